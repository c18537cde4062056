//! Points in time, written as RFC 3339 with an offset ("2026-12-01T10:00:00+09:00"), so a room opening at
//! 10:00 Seoul time is not accidentally opened at 10:00 UTC.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Unix seconds, with the text it was written as kept for the effective-settings dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Timestamp {
    unix: i64,
    text: String,
}

impl Timestamp {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| {
            format!("invalid time {s:?}: {e} (write RFC 3339 with an offset, like \"2026-12-01T10:00:00+09:00\")")
        })?;
        Ok(Self { unix: t.unix_timestamp(), text: s.trim().to_string() })
    }

    pub fn from_unix(unix: i64) -> Self {
        let text = OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| unix.to_string());
        Self { unix, text }
    }

    /// Unix seconds; times before 1970 read as 0.
    pub fn unix(&self) -> u64 {
        u64::try_from(self.unix).unwrap_or(0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted RFC 3339 time such as \"2026-12-01T10:00:00+09:00\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            // An unquoted TOML datetime arrives as a map; say how to write it rather than "expected a string".
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Timestamp, A::Error> {
                Err(serde::de::Error::custom("write the time in quotes, with an offset: \"2026-12-01T10:00:00+09:00\""))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count() {
        let seoul = Timestamp::parse("2026-12-01T10:00:00+09:00").expect("valid");
        let utc = Timestamp::parse("2026-12-01T01:00:00Z").expect("valid");
        assert_eq!(seoul.unix(), utc.unix());
        assert!(Timestamp::parse("2026-12-01 10:00").is_err());
        assert_eq!(Timestamp::from_unix(0).to_string(), "1970-01-01T00:00:00Z");
    }
}
