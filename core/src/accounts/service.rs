//! [`Accounts`]: users, logins and token authentication for every face.

use std::sync::Arc;
use std::time::Duration;

use super::password::{self, PasswordError};
use super::token::{ACCESS_PREFIX, REFRESH_PREFIX, TokenSecret};
use crate::clock::now_ms;
use crate::ids::{DeviceId, IdError, ServerName, UserId};
use crate::store::{AccountStore, DeviceRecord, StoreError, TokenKind, TokenRecord, UserRecord};

/// Who a valid access token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: UserId,
    /// The device the token was issued to.
    pub device_id: DeviceId,
}

/// What a successful login hands the client.
#[derive(Debug)]
pub struct LoginResult {
    /// Who logged in.
    pub identity: Identity,
    /// The new access token (shown once).
    pub access_token: TokenSecret,
    /// A refresh token, when access tokens expire.
    pub refresh_token: Option<TokenSecret>,
    /// Milliseconds until the access token expires, when it does.
    pub expires_in_ms: Option<u64>,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The user id is taken (or belonged to a deactivated account).
    #[error("user id already taken")]
    UserInUse,
    /// The requested localpart is not allowed.
    #[error("invalid user name: {0}")]
    InvalidUsername(#[from] IdError),
    /// Unknown user or wrong password; deliberately not told apart.
    #[error("invalid user name or password")]
    BadCredentials,
    /// The account is deactivated.
    #[error("account is deactivated")]
    Deactivated,
    /// The token is unknown, expired or revoked.
    #[error("unknown or expired token")]
    UnknownToken {
        /// The token existed but expired: the client may refresh.
        expired: bool,
    },
    /// The user does not exist.
    #[error("no such user")]
    NoSuchUser,
    /// The password cannot be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users, logins and tokens, shared by the Matrix adapter, the native faces
/// and the `axon user` command.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    server_name: ServerName,
    access_ttl: Option<Duration>,
    refreshable_ttl: Duration,
}

/// Lifetime of the access tokens of a session that asked for a refresh
/// token, unless [`Accounts::with_refreshable_ttl`] says otherwise: five
/// minutes, as Synapse does.
pub const DEFAULT_REFRESHABLE_TTL: Duration = Duration::from_secs(300);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl Accounts {
    /// Accounts of users on `server_name`. With `access_ttl`, access tokens
    /// expire and logins also return a refresh token.
    pub fn new(
        store: Arc<dyn AccountStore>,
        server_name: ServerName,
        access_ttl: Option<Duration>,
    ) -> Self {
        Self {
            store,
            server_name,
            access_ttl,
            refreshable_ttl: DEFAULT_REFRESHABLE_TTL,
        }
    }

    /// Sets how long access tokens live in sessions opened with a refresh
    /// token (Matrix's `refresh_token: true`) when `access_ttl` is unset.
    pub fn with_refreshable_ttl(mut self, ttl: Duration) -> Self {
        self.refreshable_ttl = ttl;
        self
    }

    /// This server's name.
    pub fn server_name(&self) -> &ServerName {
        &self.server_name
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// Creates a user `@localpart:server_name`.
    pub async fn create_user(
        &self,
        localpart: &str,
        password: Option<String>,
        admin: bool,
    ) -> Result<UserRecord, AccountsError> {
        let user_id = UserId::new(localpart, &self.server_name)?;
        let password_hash = match password {
            Some(p) => Some(blocking(move || password::hash(&p)).await?),
            None => None,
        };
        let record = UserRecord {
            user_id,
            password_hash,
            display_name: Some(localpart.to_owned()),
            avatar_url: None,
            admin,
            deactivated: false,
            created_ts: now_ms(),
        };
        match self.store.create_user(&record).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => Err(AccountsError::UserInUse),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks a password and opens a session on a (new or existing) device.
    pub async fn login_password(
        &self,
        user_id: &UserId,
        password: &str,
        device_id: Option<DeviceId>,
        device_name: Option<String>,
    ) -> Result<LoginResult, AccountsError> {
        self.verify_password(user_id, password).await?;
        self.open_session(user_id, device_id, device_name).await
    }

    /// Checks a user's password without opening a session (logins, and
    /// re-authentication before sensitive changes).
    pub async fn verify_password(
        &self,
        user_id: &UserId,
        password: &str,
    ) -> Result<UserRecord, AccountsError> {
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(AccountsError::BadCredentials)?;
        if user.deactivated {
            return Err(AccountsError::Deactivated);
        }
        let hash = user
            .password_hash
            .clone()
            .ok_or(AccountsError::BadCredentials)?;
        let password = password.to_owned();
        if !blocking(move || password::verify(&password, &hash)).await? {
            return Err(AccountsError::BadCredentials);
        }
        Ok(user)
    }

    /// Issues tokens for `user_id` on a device (creating the device if new),
    /// without a password: for registration and the operator's command line.
    pub async fn open_session(
        &self,
        user_id: &UserId,
        device_id: Option<DeviceId>,
        device_name: Option<String>,
    ) -> Result<LoginResult, AccountsError> {
        self.open_session_with(user_id, device_id, device_name, false)
            .await
    }

    /// [`open_session`](Self::open_session), and with `refreshable` the
    /// session's access tokens expire and a refresh token comes with them
    /// (they always do when `access_ttl` is set).
    pub async fn open_session_with(
        &self,
        user_id: &UserId,
        device_id: Option<DeviceId>,
        device_name: Option<String>,
        refreshable: bool,
    ) -> Result<LoginResult, AccountsError> {
        let ttl = match (self.access_ttl, refreshable) {
            (Some(ttl), _) => Some(ttl),
            (None, true) => Some(self.refreshable_ttl),
            (None, false) => None,
        };
        let device_id = device_id.unwrap_or_else(DeviceId::random);
        if self.store.device(user_id, &device_id).await?.is_none() {
            self.store
                .put_device(&DeviceRecord {
                    user_id: user_id.clone(),
                    device_id: device_id.clone(),
                    display_name: device_name,
                    created_ts: now_ms(),
                })
                .await?;
        }
        let identity = Identity {
            user_id: user_id.clone(),
            device_id,
        };
        let (access_token, expires) = self.issue(&identity, TokenKind::Access, ttl).await?;
        let refresh_token = match ttl {
            Some(_) => Some(self.issue(&identity, TokenKind::Refresh, None).await?.0),
            None => None,
        };
        Ok(LoginResult {
            identity,
            access_token,
            refresh_token,
            expires_in_ms: expires.map(|e| e.saturating_sub(now_ms())),
        })
    }

    async fn issue(
        &self,
        identity: &Identity,
        kind: TokenKind,
        ttl: Option<Duration>,
    ) -> Result<(TokenSecret, Option<u64>), AccountsError> {
        let prefix = match kind {
            TokenKind::Access => ACCESS_PREFIX,
            TokenKind::Refresh => REFRESH_PREFIX,
        };
        let expires_ts = ttl.map(|t| now_ms().saturating_add(t.as_millis() as u64));
        let secret = TokenSecret::generate(prefix);
        self.store
            .put_token(&TokenRecord {
                hash: secret.hash(),
                kind,
                user_id: identity.user_id.clone(),
                device_id: identity.device_id.clone(),
                created_ts: now_ms(),
                expires_ts,
            })
            .await?;
        Ok((secret, expires_ts))
    }

    /// Who an access token belongs to.
    pub async fn authenticate(&self, secret: &str) -> Result<Identity, AccountsError> {
        let record = self
            .store
            .token(&TokenSecret::from_client(secret).hash())
            .await?
            .filter(|t| t.kind == TokenKind::Access)
            .ok_or(AccountsError::UnknownToken { expired: false })?;
        if record.expires_ts.is_some_and(|e| e <= now_ms()) {
            return Err(AccountsError::UnknownToken { expired: true });
        }
        Ok(Identity {
            user_id: record.user_id,
            device_id: record.device_id,
        })
    }

    /// Exchanges a refresh token for a new access and refresh token; the old
    /// refresh token stops working.
    pub async fn refresh(&self, refresh_secret: &str) -> Result<LoginResult, AccountsError> {
        let hash = TokenSecret::from_client(refresh_secret).hash();
        let record = self
            .store
            .token(&hash)
            .await?
            .filter(|t| t.kind == TokenKind::Refresh)
            .ok_or(AccountsError::UnknownToken { expired: false })?;
        self.store.delete_token(&hash).await?;
        // The device may have logged out since: its refresh token went with it.
        if self
            .store
            .device(&record.user_id, &record.device_id)
            .await?
            .is_none()
        {
            return Err(AccountsError::UnknownToken { expired: false });
        }
        self.open_session_with(&record.user_id, Some(record.device_id), None, true)
            .await
    }

    /// Revokes one access token.
    pub async fn logout(&self, secret: &str) -> Result<(), AccountsError> {
        Ok(self
            .store
            .delete_token(&TokenSecret::from_client(secret).hash())
            .await?)
    }

    /// Removes a device and every token of it (Matrix logout).
    pub async fn remove_device(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<(), AccountsError> {
        Ok(self.store.delete_device(user_id, device_id).await?)
    }

    /// Removes every device of a user but `keep` (if any), with their tokens:
    /// logout everywhere, or everywhere else after a password change.
    pub async fn remove_devices(
        &self,
        user_id: &UserId,
        keep: Option<&DeviceId>,
    ) -> Result<(), AccountsError> {
        for device in self.store.devices(user_id).await? {
            if Some(&device.device_id) != keep {
                self.store.delete_device(user_id, &device.device_id).await?;
            }
        }
        if keep.is_none() {
            // Tokens of devices that were never recorded go too.
            self.store.delete_user_tokens(user_id).await?;
        }
        Ok(())
    }

    /// A user's account, with its profile (display name, avatar).
    pub async fn user(&self, user_id: &UserId) -> Result<UserRecord, AccountsError> {
        self.store
            .user(user_id)
            .await?
            .ok_or(AccountsError::NoSuchUser)
    }

    /// Sets (or with `None` removes) a user's display name; returns the
    /// updated account.
    pub async fn set_display_name(
        &self,
        user_id: &UserId,
        display_name: Option<String>,
    ) -> Result<UserRecord, AccountsError> {
        let mut user = self.user(user_id).await?;
        user.display_name = display_name;
        self.store.update_user(&user).await?;
        Ok(user)
    }

    /// Sets (or with `None` removes) a user's avatar URL; returns the
    /// updated account.
    pub async fn set_avatar_url(
        &self,
        user_id: &UserId,
        avatar_url: Option<String>,
    ) -> Result<UserRecord, AccountsError> {
        let mut user = self.user(user_id).await?;
        user.avatar_url = avatar_url;
        self.store.update_user(&user).await?;
        Ok(user)
    }

    /// Sets a new password.
    pub async fn set_password(
        &self,
        user_id: &UserId,
        password: String,
    ) -> Result<(), AccountsError> {
        let mut user = self
            .store
            .user(user_id)
            .await?
            .ok_or(AccountsError::NoSuchUser)?;
        user.password_hash = Some(blocking(move || password::hash(&password)).await?);
        Ok(self.store.update_user(&user).await?)
    }

    /// Deactivates an account: no more logins, every device and token removed.
    pub async fn deactivate(&self, user_id: &UserId) -> Result<(), AccountsError> {
        let mut user = self
            .store
            .user(user_id)
            .await?
            .ok_or(AccountsError::NoSuchUser)?;
        user.deactivated = true;
        user.password_hash = None;
        self.store.update_user(&user).await?;
        self.remove_devices(user_id, None).await
    }
}
