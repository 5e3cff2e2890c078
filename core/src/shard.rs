//! Shards: rooms are split over S shards by a stable hash of the room id;
//! each shard has exactly one writer, its sequencer (DESIGN invariant 1).

use serde::{Deserialize, Serialize};

use crate::ids::RoomId;

/// A shard number, `0..shard_count`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The shard that owns `room` among `shard_count` shards.
    ///
    /// FNV-1a, because the mapping must never change between releases or
    /// machines (std's hasher makes no such promise). The shard count is
    /// fixed for the life of a data directory.
    pub fn of(room: &RoomId, shard_count: u16) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in room.as_str().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self((h % u64::from(shard_count.max(1))) as u16)
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        let r = RoomId::parse("!abc:example.org").unwrap();
        // Pinned: a change here would move rooms between shards on upgrade.
        assert_eq!(ShardId::of(&r, 16), ShardId::of(&r, 16));
        assert_eq!(ShardId::of(&r, 1), ShardId(0));
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            let r = RoomId::parse(&format!("!room{i}:x")).unwrap();
            counts[ShardId::of(&r, 8).0 as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 700), "{counts:?}");
    }
}
