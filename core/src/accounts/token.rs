//! Token secrets and their stored hashes.
//!
//! A token is 256 random bits shown to the client once; the store keeps only
//! its SHA-256, so a copy of the database does not let anyone log in.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of every access token, so leaked tokens are easy to recognise.
pub const ACCESS_PREFIX: &str = "axat_";
/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "axrt_";

/// A token's secret, as handed to the client.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// A fresh random secret with the given prefix.
    pub fn generate(prefix: &str) -> Self {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
        Self(format!(
            "{prefix}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        ))
    }

    /// Wraps a secret a client presented.
    pub fn from_client(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The secret, to send to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the token is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// SHA-256 of a token secret: the key tokens are stored under.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_stably() {
        let a = TokenSecret::generate(ACCESS_PREFIX);
        let b = TokenSecret::generate(ACCESS_PREFIX);
        assert_ne!(a, b);
        assert!(a.expose().starts_with(ACCESS_PREFIX));
        assert_eq!(a.hash(), TokenSecret::from_client(a.expose()).hash());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
