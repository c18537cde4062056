use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which requests a route takes (host and path prefix), where they go, and the policies on the way.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label in metrics and logs. Defaults to `route<N>` by position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `shop.example.com`, `*.example.com`, or absent for any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries: `/api` takes `/api` and `/api/x`, not `/apix`.
    #[serde(default = "default_path")]
    pub path: String,
    /// The upstream that serves this route. Either this or `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// A built-in target instead of an upstream: `"reservations"` serves the reservation API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RouteTarget>,
    /// Policies applied in order, each `kind:name` (for example `room:sale`, `limit:per_ip`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyRef>,
    /// When a shield must shed load, the lowest priorities go first.
    #[serde(default)]
    pub priority: crate::Priority,
}

/// Targets built into the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// The reservation engine's JSON API (docs/RESERVATION.md).
    Reservations,
}

fn default_path() -> String {
    "/".to_string()
}

/// Every kind of policy a route can name. One arm per policy: adding a policy adds an arm here, and the
/// compiler then points at every match that must learn it (the config's section, the gateway's module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    Room,
    Limit,
    Shield,
    Cache,
}

impl PolicyKind {
    /// In build order: a limit may key on a room, so rooms come first.
    pub const ALL: [Self; 4] = [Self::Room, Self::Limit, Self::Shield, Self::Cache];

    /// The word before the colon in `kind:name`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Room => "room",
            Self::Limit => "limit",
            Self::Shield => "shield",
            Self::Cache => "cache",
        }
    }

    /// The config section its names refer to (`[rooms.NAME]`).
    pub fn section(self) -> &'static str {
        match self {
            Self::Room => "rooms",
            Self::Limit => "limits",
            Self::Shield => "shields",
            Self::Cache => "caches",
        }
    }

    /// The names configured for this kind, in order.
    pub fn names(self, config: &crate::Config) -> Vec<&str> {
        fn keys<V>(m: &std::collections::BTreeMap<String, V>) -> Vec<&str> {
            m.keys().map(String::as_str).collect()
        }
        match self {
            Self::Room => keys(&config.rooms),
            Self::Limit => keys(&config.limits),
            Self::Shield => keys(&config.shields),
            Self::Cache => keys(&config.caches),
        }
    }

    /// Whether a route may pass through at most one of this kind: a client holds one place in line at a time.
    pub fn once_per_route(self) -> bool {
        self == Self::Room
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known = Self::ALL.map(Self::as_str).join(", ");
            format!("unknown policy kind {s:?} (known kinds: {known})")
        })
    }
}

/// A reference to a configured policy: its kind and the name of its section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRef {
    pub kind: PolicyKind,
    pub name: String,
}

impl FromStr for PolicyRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                Ok(Self { kind: kind.parse()?, name: name.to_string() })
            }
            _ => Err(format!("invalid policy {s:?}: write it as \"kind:name\", for example \"limit:per_ip\"")),
        }
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

impl<'de> Deserialize<'de> for PolicyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PolicyRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
