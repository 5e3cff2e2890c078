//! Password hashing with Argon2id (the argon2 crate's defaults: 19 MiB, 2
//! passes, the OWASP recommendation), stored as PHC strings.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Longest password accepted, in bytes: bounds the hashing work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed or checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Empty or longer than [`MAX_PASSWORD_BYTES`].
    #[error("password must be 1 to {MAX_PASSWORD_BYTES} bytes")]
    BadLength,
    /// The stored hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    BadHash,
}

/// Hashes a password with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::BadLength);
    }
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::BadHash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::BadHash)
}

/// Whether `password` matches the stored PHC `hash`.
pub fn verify(password: &str, hash: &str) -> Result<bool, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let parsed = PasswordHash::new(hash).map_err(|_| PasswordError::BadHash)?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h).unwrap());
        assert!(!verify("wrong", &h).unwrap());
        assert_eq!(verify("x", "not a hash"), Err(PasswordError::BadHash));
        assert_eq!(hash(""), Err(PasswordError::BadLength));
    }
}
