//! A rehearsal, as a TOML file or built by the CLI from flags: who arrives when, what each user does, and
//! the bounds that keep the load finite.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use spillway_config::Seconds;

use crate::LoadgenError;
use crate::arrival::{self, Arrival};
use crate::retry::Retry;

/// The most users one run may schedule, whatever the file says: a typo should not become a day of load.
pub const MAX_USERS: u64 = 10_000_000;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report.
    #[serde(default)]
    pub name: Option<String>,
    pub arrival: Arrival,
    /// Arrivals stop at this point, and so do request loops that run `until_end`. Required for a constant
    /// rate; otherwise the schedule's own length.
    #[serde(default)]
    pub duration: Option<Seconds>,
    /// How long journeys under way may go on after `duration` (a user waiting in the room, say) before the
    /// run stops them and counts them as unfinished.
    #[serde(default = "default_grace")]
    pub grace: Seconds,
    /// At most this many users are scheduled.
    #[serde(default = "default_max_users")]
    pub max_users: u64,
    /// At most this many requests in flight, hence HTTP/1.1 connections open (with HTTP/2: streams on one
    /// connection).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Each attempt's limit, from sending to the last byte of the answer.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default)]
    pub retry: Retry,
    /// Pause between one user's requests (not before a poll, which waits as the room says).
    #[serde(default)]
    pub think_time: Option<Seconds>,
    /// Targets other than loopback addresses are refused unless this is true: a rehearsal is for your own
    /// service.
    #[serde(default)]
    pub allow_remote: bool,
    pub journey: Journey,
}

fn default_grace() -> Seconds {
    Seconds::secs(30)
}
fn default_max_users() -> u64 {
    100_000
}
fn default_connections() -> usize {
    64
}
fn default_timeout() -> Seconds {
    Seconds::secs(10)
}
fn default_method() -> String {
    "GET".into()
}
fn default_requests() -> u64 {
    1
}
fn default_true() -> bool {
    true
}

/// What each user does once it arrives.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Journey {
    /// The same request, `requests_per_user` times (or until `duration` with `until_end`).
    Requests {
        url: String,
        #[serde(default = "default_method")]
        method: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default = "default_requests")]
        requests_per_user: u64,
        #[serde(default)]
        until_end: bool,
    },
    /// A sale behind a waiting room: arrive at `url`, wait in `room` polling its status as told, then claim
    /// one item of `inventory` on the reservation route at `reserve`, and confirm it if it is held.
    Surge {
        url: String,
        room: String,
        /// The reservation route's base URL, such as `http://127.0.0.1:8080/api/reserve`.
        reserve: String,
        inventory: String,
        #[serde(default = "default_true")]
        confirm: bool,
    },
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Self, LoadgenError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| LoadgenError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Parses and checks scenario text. Errors name the key.
    pub fn parse(text: &str) -> Result<Self, LoadgenError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| LoadgenError::from_toml("", &e, text))?;
        let scenario: Self = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            LoadgenError::from_toml(&key, &e.into_inner(), text)
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks what types cannot: positive bounds, usable URLs, loopback targets.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        self.arrival.validate().map_err(|(key, reason)| LoadgenError::invalid(format!("arrival.{key}"), reason))?;
        if self.arrival.natural_length().is_none() && self.duration.is_none() {
            return Err(LoadgenError::invalid("duration", "a constant rate needs a duration to end"));
        }
        if self.max_users == 0 || self.max_users > MAX_USERS {
            return Err(LoadgenError::invalid("max_users", format!("must be between 1 and {MAX_USERS}")));
        }
        if self.connections == 0 || self.connections > 100_000 {
            return Err(LoadgenError::invalid("connections", "must be between 1 and 100000"));
        }
        if self.timeout.get().is_zero() {
            return Err(LoadgenError::invalid("timeout", "must be longer than 0s"));
        }
        match &self.journey {
            Journey::Requests { url, method, headers, until_end, requests_per_user, .. } => {
                self.check_url("journey.url", url)?;
                http::Method::from_bytes(method.as_bytes()).map_err(|_| {
                    LoadgenError::invalid("journey.method", format!("{method:?} is not an HTTP method"))
                })?;
                for (name, value) in headers {
                    let key = format!("journey.headers.{name}");
                    http::HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| LoadgenError::invalid(&key, "not a valid header name"))?;
                    http::HeaderValue::from_str(value)
                        .map_err(|_| LoadgenError::invalid(&key, "not a valid header value"))?;
                }
                if *until_end && self.duration.is_none() {
                    return Err(LoadgenError::invalid("journey.until_end", "needs a duration to end"));
                }
                if !*until_end && *requests_per_user == 0 {
                    return Err(LoadgenError::invalid("journey.requests_per_user", "must be at least 1"));
                }
            }
            Journey::Surge { url, room, reserve, inventory, .. } => {
                self.check_url("journey.url", url)?;
                self.check_url("journey.reserve", reserve)?;
                let name_ok =
                    |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if !name_ok(room) {
                    return Err(LoadgenError::invalid(
                        "journey.room",
                        "must be a room name (letters, digits, - and _)",
                    ));
                }
                if !name_ok(inventory) {
                    return Err(LoadgenError::invalid("journey.inventory", "must be an inventory id"));
                }
            }
        }
        Ok(())
    }

    fn check_url(&self, key: &str, url: &str) -> Result<Uri, LoadgenError> {
        let uri: Uri = url.parse().map_err(|e| LoadgenError::invalid(key, format!("{url:?} is not a URL: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(LoadgenError::invalid(key, "must start with http:// (TLS targets are not supported yet)"));
        }
        let host = uri.host().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && !self.allow_remote {
            return Err(LoadgenError::invalid(
                key,
                format!("{host} is not a loopback address; set allow_remote = true to rehearse against it"),
            ));
        }
        Ok(uri)
    }

    /// Until when users arrive and request loops run: `duration`, or the schedule's own length.
    pub fn window(&self) -> Duration {
        self.duration.map(Seconds::get).or_else(|| self.arrival.natural_length()).unwrap_or_default()
    }

    /// Every user's start time from the beginning of the run.
    pub fn schedule(&self) -> Vec<Duration> {
        arrival::schedule(&self.arrival, self.duration.map(Seconds::get), self.max_users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SURGE: &str = r#"
name = "drop"
duration = "5s"
[arrival]
kind = "ramp"
from = 0
to = 100
over = "5s"
[retry]
policy = "backoff"
attempts = 4
[journey]
kind = "surge"
url = "http://127.0.0.1:8080/sale/"
room = "sale"
reserve = "http://127.0.0.1:8080/api/reserve"
inventory = "coupons"
"#;

    #[test]
    fn a_surge_scenario_parses() {
        let s = Scenario::parse(SURGE).unwrap();
        assert_eq!(s.connections, 64);
        assert_eq!(s.schedule().len(), 250);
        assert!(matches!(s.retry, Retry::Backoff { attempts: 4, .. }));
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| Scenario::parse(text).unwrap_err().to_string();
        assert!(err(&SURGE.replace("inventory = ", "inventroy = ")).starts_with("journey.inventroy: unknown key"));
        assert!(
            err(&SURGE.replace("over = \"5s\"", "over = 5")).starts_with("arrival"),
            "{}",
            err(&SURGE.replace("over = \"5s\"", "over = 5"))
        );
        assert!(
            err(&SURGE.replace("127.0.0.1:8080/sale", "example.com/sale"))
                .starts_with("journey.url: example.com is not a loopback")
        );
        assert!(err(&SURGE.replace("to = 100", "to = -3")).starts_with("arrival.to: must be"));
        assert!(err(&SURGE.replace("duration = \"5s\"", "max_users = 0")).starts_with("max_users:"));
        let constant =
            "[arrival]\nkind = \"constant\"\nrate = 5\n[journey]\nkind = \"requests\"\nurl = \"http://127.0.0.1:1/\"\n";
        assert!(err(constant).starts_with("duration: a constant rate needs"));
    }
}
