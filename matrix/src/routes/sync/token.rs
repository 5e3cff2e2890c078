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
        let (positions, ephemeral) = s
            .strip_prefix('s')
            .and_then(|s| s.split_once('_'))
            .ok_or_else(bad)?;
        let mut shards_read = Vec::with_capacity(usize::from(shards));
        numbers(positions, b'.', &mut shards_read, usize::from(shards)).ok_or_else(bad)?;
        let mut e = Vec::with_capacity(4);
        numbers(ephemeral, b'_', &mut e, 4).ok_or_else(bad)?;
        match (shards_read.len() == usize::from(shards), e.as_slice()) {
            (true, &[typing, receipts, presence, account_data]) => Ok(Self {
                shards: shards_read,
                typing,
                receipts,
                presence,
                account_data,
            }),
            _ => Err(bad()),
        }
    }

    /// The token's string form, written without `core::fmt`'s machinery
    /// per number: it is written on every `/sync`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 + 21 * (self.shards.len() + 4));
        let mut digits = itoa::Buffer::new();
        out.push('s');
        for (i, p) in self.shards.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            out.push_str(digits.format(*p));
        }
        for p in [self.typing, self.receipts, self.presence, self.account_data] {
            out.push('_');
            out.push_str(digits.format(p));
        }
        out
    }
}

/// Reads `s` as positions separated by `sep` into `out`: each decimal
/// digits only (no sign, no spaces) within `u64`, at most `max` of them.
/// `None` for anything else.
fn numbers(s: &str, sep: u8, out: &mut Vec<u64>, max: usize) -> Option<()> {
    let mut n: u64 = 0;
    let mut digits = 0;
    for b in s.bytes().chain([sep]) {
        if b == sep {
            if digits == 0 || out.len() == max {
                return None;
            }
            out.push(n);
            (n, digits) = (0, 0);
            continue;
        }
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
        digits += 1;
    }
    Some(())
}

impl fmt::Display for SyncToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
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
        let max = format!("s{m}.0.0_0_0_0_{m}", m = u64::MAX);
        assert_eq!(
            SyncToken::parse(&max, 3).map(|t| t.to_string()).ok(),
            Some(max)
        );
        for junk in [
            "",
            "s",
            "t3",
            "s1.2.3_1_2_3",
            "s1.2.3_1_2_3_4_5",
            "s1.x.3_1_2_3_4",
            "s1..3_1_2_3_4",
            "s1.2.3.4_1_2_3_4",
            "s+1.2.3_1_2_3_4",
            "s1.2.3_1_2_3_-4",
            "s1.2.3_1_2_3_18446744073709551616",
            "s1.2.3_1_2__4",
        ] {
            assert!(SyncToken::parse(junk, 3).is_err(), "{junk}");
        }
    }
}
