//! Identifiers: users, rooms, events, devices and the server name.
//!
//! Each id is validated once, when it is parsed, and is cheap to clone
//! afterwards (an `Arc<str>` inside). The grammar follows the Matrix
//! specification's "common identifier format" so the same ids serve the
//! Matrix adapter and the native faces.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest id accepted, in bytes (the Matrix limit for user, room and event ids).
pub const MAX_ID_BYTES: usize = 255;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty or longer than [`MAX_ID_BYTES`].
    #[error("{kind} must be 1 to {MAX_ID_BYTES} bytes long")]
    Length {
        /// Which kind of id.
        kind: &'static str,
    },
    /// The id does not start with its sigil character.
    #[error("{kind} must start with '{sigil}'")]
    Sigil {
        /// Which kind of id.
        kind: &'static str,
        /// The expected first character.
        sigil: char,
    },
    /// The id lacks the `:server_name` part.
    #[error("{kind} must have the form {sigil}localpart:server_name")]
    MissingServer {
        /// Which kind of id.
        kind: &'static str,
        /// The expected first character.
        sigil: char,
    },
    /// A character that the grammar does not allow.
    #[error("{kind} contains a character that is not allowed")]
    BadCharacter {
        /// Which kind of id.
        kind: &'static str,
    },
}

fn check_len(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > MAX_ID_BYTES {
        return Err(IdError::Length { kind });
    }
    Ok(())
}

/// Printable ASCII without space: what every opaque id part may contain.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn check_server_name(kind: &'static str, server: &str) -> Result<(), IdError> {
    // host[:port], where host is a DNS name, an IPv4 address or a bracketed IPv6.
    let ok = !server.is_empty()
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadCharacter { kind })
    }
}

fn random_opaque(len_bytes: usize) -> String {
    let mut buf = vec![0u8; len_bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Hash and Eq are those of the string (`Arc<str>` hashes as `str`),
        // so sets and maps of ids can be looked up by `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// The name of this server, `host[:port]`; the part after `:` in user and room ids.
    ServerName,
    "server name"
);

impl ServerName {
    /// Parses a server name (`host[:port]`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_len("server name", s)?;
        check_server_name("server name", s)?;
        Ok(Self(s.into()))
    }
}

string_id!(
    /// A user, `@localpart:server_name`.
    UserId,
    "user id"
);

impl UserId {
    /// Parses a user id. Historical localparts (any printable ASCII but `:`) are
    /// accepted so that existing ids keep working; new registrations should
    /// also pass [`UserId::is_strict_localpart`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "user id";
        check_len(KIND, s)?;
        let rest = s.strip_prefix('@').ok_or(IdError::Sigil {
            kind: KIND,
            sigil: '@',
        })?;
        let (local, server) = rest.split_once(':').ok_or(IdError::MissingServer {
            kind: KIND,
            sigil: '@',
        })?;
        if local.is_empty() || !printable(local) {
            return Err(IdError::BadCharacter { kind: KIND });
        }
        check_server_name(KIND, server)?;
        Ok(Self(s.into()))
    }

    /// Builds `@localpart:server` from a localpart, which must be strict.
    pub fn new(localpart: &str, server: &ServerName) -> Result<Self, IdError> {
        if !Self::is_strict_localpart(localpart) {
            return Err(IdError::BadCharacter { kind: "user id" });
        }
        Self::parse(&format!("@{localpart}:{server}"))
    }

    /// Whether a localpart uses only the characters the Matrix spec allows for
    /// new users: `a-z 0-9 . _ = - / +`.
    pub fn is_strict_localpart(localpart: &str) -> bool {
        !localpart.is_empty()
            && localpart.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'=' | b'-' | b'/' | b'+')
            })
    }

    /// The part between `@` and `:`.
    pub fn localpart(&self) -> &str {
        let rest = &self.0[1..];
        rest.split_once(':').map_or(rest, |(l, _)| l)
    }

    /// The part after the first `:`.
    pub fn server_name(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, s)| s)
    }
}

string_id!(
    /// A room, `!opaque:server_name`.
    RoomId,
    "room id"
);

impl RoomId {
    /// Parses a room id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "room id";
        check_len(KIND, s)?;
        let rest = s.strip_prefix('!').ok_or(IdError::Sigil {
            kind: KIND,
            sigil: '!',
        })?;
        let (opaque, server) = rest.split_once(':').ok_or(IdError::MissingServer {
            kind: KIND,
            sigil: '!',
        })?;
        if opaque.is_empty() || !printable(opaque) {
            return Err(IdError::BadCharacter { kind: KIND });
        }
        check_server_name(KIND, server)?;
        Ok(Self(s.into()))
    }

    /// A fresh random room id on `server`.
    pub fn random(server: &ServerName) -> Self {
        Self(format!("!{}:{server}", random_opaque(12)).into())
    }
}

string_id!(
    /// An event, `$opaque` (room versions 4 and later have no server part).
    EventId,
    "event id"
);

impl EventId {
    /// Parses an event id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "event id";
        check_len(KIND, s)?;
        let rest = s.strip_prefix('$').ok_or(IdError::Sigil {
            kind: KIND,
            sigil: '$',
        })?;
        if rest.is_empty() || !printable(rest) {
            return Err(IdError::BadCharacter { kind: KIND });
        }
        Ok(Self(s.into()))
    }

    /// A new event id: the time in milliseconds (48 bits as 12 hex digits)
    /// then 80 random bits (URL-safe base64), 27 characters in all.
    ///
    /// Why the time first: the store indexes events by id, and ids made
    /// about the same time now sort next to each other, so each new one
    /// goes where the last ones went. Fully random ids landed anywhere in
    /// the index, a cache miss at every level of its memtable: appends ran
    /// at 70k/s with them and 89k/s with these (docs/benchmarks.md). The
    /// time is no secret: every event carries `origin_server_ts`.
    pub fn generate() -> Self {
        let ms = crate::clock::now_ms() & 0xffff_ffff_ffff;
        Self(format!("${ms:012x}{}", random_opaque(10)).into())
    }
}

string_id!(
    /// A device of a user: every access token belongs to one.
    DeviceId,
    "device id"
);

impl DeviceId {
    /// Parses a device id: 1 to 255 printable ASCII characters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "device id";
        check_len(KIND, s)?;
        if !printable(s) {
            return Err(IdError::BadCharacter { kind: KIND });
        }
        Ok(Self(s.into()))
    }

    /// A fresh random device id of ten upper-case letters, as Synapse makes them.
    pub fn random() -> Self {
        let mut rng = rand::rng();
        let id: String = (0..10)
            .map(|_| char::from(b'A' + (rng.next_u32() % 26) as u8))
            .collect();
        Self(id.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        let u = UserId::parse("@alice:example.org").unwrap();
        assert_eq!(u.localpart(), "alice");
        assert_eq!(u.server_name(), "example.org");
        assert!(UserId::parse("alice:example.org").is_err());
        assert!(UserId::parse("@alice").is_err());
        assert!(UserId::parse("@:example.org").is_err());
        assert!(UserId::parse("@al ice:example.org").is_err());
        assert!(UserId::parse(&format!("@{}:x", "a".repeat(300))).is_err());
        assert!(UserId::new("Alice", &ServerName::parse("x").unwrap()).is_err());
        assert_eq!(
            UserId::new("bob", &ServerName::parse("localhost:8008").unwrap())
                .unwrap()
                .as_str(),
            "@bob:localhost:8008"
        );
    }

    #[test]
    fn room_and_event_ids() {
        let server = ServerName::parse("localhost").unwrap();
        let r = RoomId::random(&server);
        assert_eq!(RoomId::parse(r.as_str()).unwrap(), r);
        assert!(RoomId::parse("!:x").is_err());
        assert!(RoomId::parse("#alias:x").is_err());
        let e = EventId::generate();
        assert_eq!(EventId::parse(e.as_str()).unwrap(), e);
        assert!(EventId::parse("$").is_err());
        assert_eq!(DeviceId::random().as_str().len(), 10);
    }

    #[test]
    fn generated_event_ids_sort_by_time_and_differ() {
        let first = EventId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        assert_eq!(first.as_str().len(), 27);
        assert!(later.iter().all(|e| e > &first));
        let distinct: std::collections::HashSet<_> = later.iter().collect();
        assert_eq!(distinct.len(), later.len());
    }

    #[test]
    fn serde_validates() {
        let r: Result<UserId, _> = serde_json::from_str("\"nope\"");
        assert!(r.is_err());
        let u: UserId = serde_json::from_str("\"@a:b\"").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"@a:b\"");
    }
}
