//! [`RoomVersion`]: the room versions Axon creates and serves.
//!
//! Without federation the versions differ for Axon only in the redaction
//! algorithm ([`super::redaction`]); authorization is the same for all.

/// A supported room version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RoomVersion {
    /// Version 10.
    V10,
    /// Version 11, the default for new rooms.
    #[default]
    V11,
}

impl RoomVersion {
    /// Every version Axon supports, as the spec names them.
    pub const SUPPORTED: [&'static str; 2] = ["10", "11"];

    /// Parses the spec's name; `None` for versions Axon does not support.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "10" => Some(Self::V10),
            "11" => Some(Self::V11),
            _ => None,
        }
    }

    /// The spec's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V10 => "10",
            Self::V11 => "11",
        }
    }

    /// The version named in `m.room.create` content; rooms made before the
    /// field was honoured are version 11, which is what they were created as.
    pub fn of_create_content(content: &[u8]) -> Self {
        serde_json::from_slice::<serde_json::Value>(content)
            .ok()
            .and_then(|v| v.get("room_version")?.as_str().and_then(Self::parse))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_versions_are_refused() {
        for name in RoomVersion::SUPPORTED {
            assert_eq!(
                RoomVersion::parse(name).map(RoomVersion::as_str),
                Some(name)
            );
        }
        assert_eq!(RoomVersion::parse("1"), None);
        assert_eq!(RoomVersion::parse("org.example.custom"), None);
        assert_eq!(
            RoomVersion::of_create_content(br#"{"room_version":"10"}"#),
            RoomVersion::V10
        );
        assert_eq!(RoomVersion::of_create_content(b"{}"), RoomVersion::V11);
    }
}
