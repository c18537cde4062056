use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Seconds;

/// A rate limit: what to count by, the bands that must all pass, and what to do when one does not. Every
/// key is described in docs/RATE_LIMITING.md.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// What requests are counted by: one part or several (a composite key).
    #[serde(default = "defaults::key")]
    pub key: KeySpec,
    #[serde(default)]
    pub action: Action,
    /// Throttle: the longest a request is held before it is refused after all.
    #[serde(default = "defaults::max_wait")]
    pub max_wait: Seconds,
    /// Keys tracked at most; idle keys are forgotten first.
    #[serde(default = "defaults::max_keys")]
    pub max_keys: usize,
    /// Clients in these networks are never limited.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Cidr>,
    /// Clients in these networks are always refused (403).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Cidr>,
    /// Shorthand for a single band: `algorithm`, `rate`, `burst`, `refill` right on the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
    /// Several bands, all of which must pass (10/s with a burst of 20, and 1000/day).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<BandConfig>,
    /// When the limit's store cannot answer: `closed` (503, the default) or `open` (let the request through).
    #[serde(default)]
    pub on_store_error: crate::OnStoreError,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BandConfig {
    /// Shown in the `RateLimit` headers; defaults to the limit's name, with the band's number if there are
    /// several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub algorithm: AlgorithmKind,
    pub rate: Rate,
    /// GCRA: requests allowed at once; token bucket: capacity; leaky bucket: how many may wait. Default: the
    /// rate's count for buckets, 1 for GCRA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default)]
    pub refill: Refill,
}

impl LimitConfig {
    /// The bands, with the single-band shorthand turned into one.
    pub fn effective_bands(&self) -> Vec<BandConfig> {
        if !self.bands.is_empty() {
            return self.bands.clone();
        }
        match self.rate {
            Some(rate) => vec![BandConfig {
                name: None,
                algorithm: self.algorithm.unwrap_or_default(),
                rate,
                burst: self.burst,
                refill: self.refill.unwrap_or_default(),
            }],
            None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    #[default]
    Gcra,
    TokenBucket,
    LeakyBucket,
    FixedWindow,
    SlidingWindow,
    SlidingLog,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refill {
    #[default]
    Greedy,
    Interval,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse with 429.
    #[default]
    Reject,
    /// Hold the request until it may pass, up to `max_wait`; refuse it if that is not enough.
    Throttle,
    /// Decide and count, but let everything through: for trying a limit on live traffic.
    Shadow,
}

/// Longest period a rate may have: a year's quota is the longest anyone asks for.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 86_400);

/// `count/period`: "10/s", "600/m", "1000/d", "5/15m".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period: Duration,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {s:?}: write it as count/period, like \"10/s\", \"600/m\" or \"5/15m\"");
        let (count, period) = s.split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let period = match period {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            // "10/sec", "10/min": a unit alone means one of it.
            other if other.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                humantime::parse_duration(&format!("1{other}")).map_err(|_| bad())?
            }
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if count == 0 || period.is_zero() {
            return Err(format!("invalid rate {s:?}: the count and the period must be greater than 0"));
        }
        if period > MAX_PERIOD {
            return Err(format!("invalid rate {s:?}: the period may be at most 366 days"));
        }
        Ok(Self { count, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_secs() {
            1 if self.period.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.period.subsec_nanos() == 0 => write!(f, "{}/m", self.count),
            3600 if self.period.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            86_400 if self.period.subsec_nanos() == 0 => write!(f, "{}/d", self.count),
            _ => write!(f, "{}/{}", self.count, humantime::format_duration(self.period)),
        }
    }
}

/// What a request is counted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// The client's address (behind trusted proxies, the address they forwarded).
    Ip,
    /// A request header, such as `X-API-Key`.
    Header(String),
    Cookie(String),
    /// The session of a valid admission pass for this room: one user, whatever their address.
    Pass(String),
    /// The route: each route counts separately under the same limit.
    Route,
    /// Everyone together.
    Global,
}

impl FromStr for KeyPart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a.trim())),
            None => (s, None),
        };
        match (kind.trim(), arg) {
            ("ip", None) => Ok(Self::Ip),
            ("route", None) => Ok(Self::Route),
            ("global", None) => Ok(Self::Global),
            ("header", Some(name)) if http_token(name) => Ok(Self::Header(name.to_ascii_lowercase())),
            ("cookie", Some(name)) if http_token(name) => Ok(Self::Cookie(name.to_string())),
            ("pass", Some(room)) if !room.is_empty() => Ok(Self::Pass(room.to_string())),
            _ => Err(format!(
                "invalid key {s:?}: use \"ip\", \"header:NAME\", \"cookie:NAME\", \"pass:ROOM\", \"route\" or \"global\""
            )),
        }
    }
}

fn http_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::Header(h) => write!(f, "header:{h}"),
            Self::Cookie(c) => write!(f, "cookie:{c}"),
            Self::Pass(r) => write!(f, "pass:{r}"),
            Self::Route => f.write_str("route"),
            Self::Global => f.write_str("global"),
        }
    }
}

/// One key part, or several written as a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec(pub Vec<KeyPart>);

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let parts = match Raw::deserialize(d)? {
            Raw::One(s) => vec![s],
            Raw::Many(v) => v,
        };
        if parts.is_empty() {
            return Err(serde::de::Error::custom(
                "empty key; use for example \"ip\" or [\"header:X-API-Key\", \"route\"]",
            ));
        }
        parts.iter().map(|p| p.parse()).collect::<Result<Vec<_>, _>>().map(KeySpec).map_err(serde::de::Error::custom)
    }
}

impl Serialize for KeySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        parts.serialize(s)
    }
}

/// An address block: "10.0.0.0/8", "2001:db8::/32", or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
            .map(|n| Self(n.trunc()))
            .map_err(|_| format!("invalid network {s:?}: write \"10.0.0.0/8\", \"2001:db8::/32\" or an address"))
    }
}

macro_rules! via_string {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

via_string!(Rate);
via_string!(Cidr);

mod defaults {
    use super::{KeyPart, KeySpec};
    use crate::Seconds;

    pub fn key() -> KeySpec {
        KeySpec(vec![KeyPart::Ip])
    }
    pub fn max_wait() -> Seconds {
        Seconds::secs(1)
    }
    pub fn max_keys() -> usize {
        1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_keys_parse_and_print_back() {
        assert_eq!("10/sec".parse::<Rate>().map(|r| r.period), Ok(Duration::from_secs(1)));
        assert!("1/400days".parse::<Rate>().is_err());
        for s in ["10/s", "600/m", "1000/d", "5/15m", "2/h"] {
            assert_eq!(s.parse::<Rate>().map(|r| r.to_string()), Ok(s.to_string()));
        }
        assert!("0/s".parse::<Rate>().is_err());
        assert!("10 per second".parse::<Rate>().is_err());
        assert_eq!("header:X-API-Key".parse::<KeyPart>(), Ok(KeyPart::Header("x-api-key".into())));
        assert!("header:".parse::<KeyPart>().is_err());
        assert!("teapot".parse::<KeyPart>().is_err());
        assert_eq!("10.1.2.3".parse::<Cidr>().map(|c| c.to_string()), Ok("10.1.2.3/32".into()));
        assert_eq!("10.1.2.3/8".parse::<Cidr>().map(|c| c.to_string()), Ok("10.0.0.0/8".into()));
    }
}
