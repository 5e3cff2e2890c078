//! `axon user ...`: account management for operators, on the data directory
//! directly (until the Matrix adapter provides registration and admin APIs).
//!
//! Each command locks the data directory, so it refuses to run while a
//! server uses it. Results go to stdout (`token` prints the token alone, for
//! scripts); notes go to stderr.

use std::io::BufRead as _;

use anyhow::Context as _;
use axon_core::accounts::AccountsError;
use axon_core::store::AccountStore;
use axon_core::{Accounts, DeviceId, ServerName, UserId};

use crate::cli::UserCommand;
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::storage;

/// Users listed per store read.
const PAGE: usize = 256;

/// Runs one `axon user` command against the configured data directory.
pub async fn run(cmd: UserCommand, config: &Config) -> anyhow::Result<()> {
    // Read secrets before touching the data directory, so a slow typist does
    // not hold its lock.
    let password = match &cmd {
        UserCommand::Create {
            password_stdin: true,
            ..
        } => Some(read_password_line()?),
        UserCommand::Create { password, .. } => password.clone(),
        UserCommand::SetPassword {
            password: Some(p), ..
        } => Some(p.clone()),
        UserCommand::SetPassword { password: None, .. } => {
            eprintln!("reading the new password from standard input (one line)");
            Some(read_password_line()?)
        }
        _ => None,
    };
    let data_dir = DataDir::open(&config.data_dir)?;
    let (store, _) = storage::open(&config.storage, &data_dir).await?;
    let account_store: std::sync::Arc<dyn AccountStore> = store.clone();
    let accounts = Accounts::new(account_store, config.server_name.clone(), None);
    let result = execute(cmd, password, &accounts).await;
    let flushed = store.flush().await.context("flushing the store");
    drop(accounts);
    drop(store);
    drop(data_dir);
    result.and(flushed)
}

async fn execute(
    cmd: UserCommand,
    password: Option<String>,
    accounts: &Accounts,
) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            localpart, admin, ..
        } => {
            let user = accounts.create_user(&localpart, password, admin).await.map_err(|e| match e {
                AccountsError::UserInUse => {
                    anyhow::anyhow!("@{localpart}:{} already exists", accounts.server_name())
                }
                AccountsError::InvalidUsername(_) => anyhow::anyhow!(
                    "{localpart:?} is not a valid localpart: use lower-case letters, digits and ._=-/+"
                ),
                e => anyhow::Error::new(e).context("creating the user"),
            })?;
            let role = if user.admin { " (admin)" } else { "" };
            let login = if user.password_hash.is_some() {
                ""
            } else {
                ", no password: use `axon user token`"
            };
            println!("created {}{role}{login}", user.user_id);
        }
        UserCommand::List => list(accounts).await?,
        UserCommand::SetPassword { user, .. } => {
            let user_id = resolve(&user, accounts.server_name())?;
            let password = password.context("no password given")?;
            accounts
                .set_password(&user_id, password)
                .await
                .map_err(|e| no_such_user(e, &user_id))?;
            println!("password of {user_id} changed");
        }
        UserCommand::Deactivate { user } => {
            let user_id = resolve(&user, accounts.server_name())?;
            accounts
                .deactivate(&user_id)
                .await
                .map_err(|e| no_such_user(e, &user_id))?;
            println!("{user_id} deactivated; its tokens are revoked");
        }
        UserCommand::Token {
            user,
            device,
            device_name,
        } => {
            let user_id = resolve(&user, accounts.server_name())?;
            let record = accounts
                .store()
                .user(&user_id)
                .await
                .context("reading the user")?
                .with_context(|| format!("no such user: {user_id}"))?;
            if record.deactivated {
                anyhow::bail!("{user_id} is deactivated");
            }
            let device = device
                .map(|d| {
                    DeviceId::parse(&d).with_context(|| format!("{d:?} is not a valid device id"))
                })
                .transpose()?;
            let login = accounts
                .open_session(&user_id, device, device_name)
                .await
                .context("issuing the token")?;
            eprintln!(
                "access token for {user_id} on device {}:",
                login.identity.device_id
            );
            println!("{}", login.access_token.expose());
        }
    }
    Ok(())
}

async fn list(accounts: &Accounts) -> anyhow::Result<()> {
    let mut users = Vec::new();
    let mut after: Option<UserId> = None;
    loop {
        let page = accounts
            .store()
            .users(after.as_ref(), PAGE)
            .await
            .context("listing users")?;
        let done = page.len() < PAGE;
        after = page.last().map(|u| u.user_id.clone());
        users.extend(page);
        if done || after.is_none() {
            break;
        }
    }
    let width = users
        .iter()
        .map(|u| u.user_id.as_str().len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!("{:width$}  {:5}  {:11}  CREATED", "USER", "ADMIN", "STATUS");
    for u in &users {
        println!(
            "{:width$}  {:5}  {:11}  {}",
            u.user_id.as_str(),
            if u.admin { "yes" } else { "no" },
            if u.deactivated {
                "deactivated"
            } else {
                "active"
            },
            utc_date(u.created_ts),
        );
    }
    eprintln!("{} user(s)", users.len());
    Ok(())
}

/// `@user:server` as given, or a localpart on this server.
pub(crate) fn resolve(arg: &str, server: &ServerName) -> anyhow::Result<UserId> {
    let full = if arg.starts_with('@') {
        arg.to_owned()
    } else {
        format!("@{arg}:{server}")
    };
    UserId::parse(&full).with_context(|| format!("{arg:?} is not a user id or localpart"))
}

fn no_such_user(e: AccountsError, user: &UserId) -> anyhow::Error {
    match e {
        AccountsError::NoSuchUser => anyhow::anyhow!("no such user: {user}"),
        e => anyhow::Error::new(e),
    }
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    Ok(password)
}

/// `YYYY-MM-DD HH:MM UTC` from milliseconds since the Unix epoch.
fn utc_date(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => format!("{ms} ms after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn users_resolve_from_localparts() {
        let server = ServerName::parse("example.org").unwrap();
        assert_eq!(
            resolve("alice", &server).unwrap().as_str(),
            "@alice:example.org"
        );
        assert_eq!(
            resolve("@bob:other.org", &server).unwrap().as_str(),
            "@bob:other.org"
        );
        assert!(resolve("@nope", &server).is_err());
    }
}
