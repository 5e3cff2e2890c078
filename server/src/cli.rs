//! The command line (clap): global flags, `serve`, `user ...`, `config ...`.
//! What each command does is in [`commands`](crate::commands).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{FlagOverrides, LogFlags, LogFormat};

/// `axon`: the Axon messaging server and its operator commands.
#[derive(Debug, Parser)]
#[command(name = "axon", version, about = "Axon, a real-time messaging server, and its operator commands", long_about = None)]
pub struct Cli {
    /// Flags that apply to every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do; runs the server when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that apply to every command: the top configuration layer.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see docs/configuration.md).
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "AXON_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Data directory (`data_dir`); default ./data.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Server name (`server_name`), the part after `:` in user ids.
    #[arg(long, global = true, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Log format (`log.format`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter (`log.level`), e.g. `debug` or `info,axon_core=trace`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl GlobalArgs {
    /// The flags as the top configuration layer.
    pub fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            data_dir: self.data_dir.clone(),
            server_name: self.server_name.clone(),
            log: LogFlags {
                format: self.log_format,
                level: self.log_level.clone(),
            },
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (what plain `axon` does).
    Serve,
    /// Manage user accounts (opens the data directory; stop the server first).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage rooms (opens the data directory; stop the server first).
    #[command(subcommand)]
    Room(RoomCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `axon room ...`.
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room and print its id. The creator is joined with power
    /// level 100; each member is invited and joined.
    Create {
        /// `@user:server` or a localpart: who creates the room.
        #[arg(long)]
        creator: String,
        /// `@user:server` or a localpart to invite and join (repeatable).
        #[arg(long = "member")]
        members: Vec<String>,
        /// The room's name.
        #[arg(long)]
        name: Option<String>,
        /// Anyone may join (default: invite only).
        #[arg(long)]
        public: bool,
    },
}

/// `axon user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user `@LOCALPART:server_name`.
    Create {
        /// Localpart: lower-case letters, digits and `._=-/+`.
        localpart: String,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// The password (visible to other local users in the process list;
        /// prefer --password-stdin). Without either, the account has no
        /// password and logs in with `axon user token` only.
        #[arg(long)]
        password: Option<String>,
        /// Make the user a server administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List every user.
    List,
    /// Set a user's password (read from standard input unless --password).
    SetPassword {
        /// `@user:server` or a localpart.
        user: String,
        /// The password (prefer standard input).
        #[arg(long)]
        password: Option<String>,
    },
    /// Deactivate a user: no more logins, every token revoked, id never reused.
    Deactivate {
        /// `@user:server` or a localpart.
        user: String,
    },
    /// Issue a new access token for a user and print it.
    Token {
        /// `@user:server` or a localpart.
        user: String,
        /// Device id to issue it to (created if new); random if omitted.
        #[arg(long)]
        device: Option<String>,
        /// Display name of a new device.
        #[arg(long)]
        device_name: Option<String>,
    },
}

/// `axon config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (every layer applied) as TOML.
    Show,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_subcommands() {
        let cli = Cli::try_parse_from([
            "axon",
            "user",
            "list",
            "--data-dir",
            "/d",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(cli.global.log_format, Some(LogFormat::Json));
        assert!(matches!(
            cli.command,
            Some(Command::User(UserCommand::List))
        ));
        let cli = Cli::try_parse_from(["axon"]).unwrap();
        assert!(cli.command.is_none());
    }
}
