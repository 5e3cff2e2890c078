//! [`SyncToken`]: where a `/sync` left off (DESIGN invariant 7).
//!
//! The string form is `s{p0}.{p1}...{pS-1}_{typing}_{receipts}_{presence}_{account_data}`:
//! the last `pos` read of each of the S shards' event streams, then the
//! positions of the ephemeral [`Streams`](axon_core::ephemeral::Streams).
//! Clients treat it as opaque. A token that does not parse, or names
//! another number of shards, is 400 `M_INVALID_PARAM` (the spec leaves
//! this open).

use std::fmt;

use crate::error::MatrixError;

/// Positions in every stream a `/sync` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncToken {
    /// Last `pos` read per shard, indexed by shard number.
    pub shards: Vec<u64>,
    /// Typing stream position.
    pub typing: u64,
    /// Receipt stream position.
    pub receipts: u64,
    /// Presence stream position.
    pub presence: u64,
    /// Account data stream position.
    pub account_data: u64,
}

impl SyncToken {
    /// Parses a token a client sent; `shards` is the server's shard count.
    pub fn parse(s: &str, shards: u16) -> Result<Self, MatrixError> {
        let bad = || MatrixError::InvalidParam(format!("unknown sync token {s:?}"));
        let mut parts = s.strip_prefix('s').ok_or_else(bad)?.split('_');
        let positions = parts.next().ok_or_else(bad)?;
        let shards_read: Vec<u64> = positions
            .split('.')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if shards_read.len() != usize::from(shards) {
            return Err(bad());
        }
        let mut next = || -> Result<u64, MatrixError> {
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
        };
        let token = Self {
            shards: shards_read,
            typing: next()?,
            receipts: next()?,
            presence: next()?,
            account_data: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(token)
    }
}

impl fmt::Display for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("s")?;
        for (i, p) in self.shards.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        write!(
            f,
            "_{}_{}_{}_{}",
            self.typing, self.receipts, self.presence, self.account_data
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let t = SyncToken {
            shards: vec![3, 0, 17],
            typing: 1,
            receipts: 2,
            presence: 3,
            account_data: 4,
        };
        let s = t.to_string();
        assert_eq!(s, "s3.0.17_1_2_3_4");
        assert_eq!(SyncToken::parse(&s, 3).ok(), Some(t));
        assert!(SyncToken::parse(&s, 2).is_err(), "another shard count");
        for junk in [
            "",
            "s",
            "t3",
            "s1.2.3_1_2_3",
            "s1.2.3_1_2_3_4_5",
            "s1.x.3_1_2_3_4",
        ] {
            assert!(SyncToken::parse(junk, 3).is_err(), "{junk}");
        }
    }
}
