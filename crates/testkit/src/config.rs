//! Test configs written once: the listeners on port 0, the admin token, the signing key, upstreams, rooms,
//! policies and routes, so each test names only what it is about.

use std::fmt::{Display, Write as _};
use std::path::Path;

use spillway_config::Config;

use crate::TOKEN;

/// The test signing secret, behind key id `k1` in [`Conf::keys`]; tests that forge or sign tokens use it.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A config built up a piece at a time, in order, as TOML text:
///
/// ```
/// # use spillway_testkit::Conf;
/// let cfg = Conf::new()
///     .keys()
///     .upstream("app", "127.0.0.1:3000")
///     .room("sale", "new_users_per_minute = 60")
///     .route("/", "app")
///     .policies(&["room:sale"])
///     .build();
/// assert_eq!(cfg.routes[0].policies.len(), 1);
/// ```
///
/// Every piece goes on after the last one, so keys given to [`raw`](Self::raw) or
/// [`policies`](Self::policies) land in the table opened last: `.upstream(..).raw("request_timeout = \"2s\"")`
/// sets the upstream's timeout, `.route(..).raw("name = \"site\"")` names the route.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    server: String,
    body: String,
}

impl Conf {
    /// Both listeners on 127.0.0.1:0 and the admin token [`TOKEN`]; nothing else.
    pub fn new() -> Self {
        Self::default()
    }

    /// More keys of the `[server]` table (`max_body_bytes = "1KiB"`, `trusted_proxies = [...]`).
    #[must_use]
    pub fn server(mut self, keys: &str) -> Self {
        push(&mut self.server, keys);
        self
    }

    /// The signing key `k1` with [`SECRET`], which rooms need.
    #[must_use]
    pub fn keys(self) -> Self {
        self.raw(&format!("[[keys]]\nid = \"k1\"\nsecret = {}", quote(SECRET)))
    }

    /// `[upstreams.NAME]` with one address.
    #[must_use]
    pub fn upstream(self, name: &str, address: impl Display) -> Self {
        self.raw(&format!("[upstreams.{name}]\naddresses = [{}]", quote(address)))
    }

    /// `[rooms.NAME]` with `settings`.
    #[must_use]
    pub fn room(self, name: &str, settings: &str) -> Self {
        self.table(&format!("rooms.{name}"), settings)
    }

    /// Any other named table, `[HEADER]` with `keys`: `.table("limits.api", "rate = \"5/s\"")`.
    #[must_use]
    pub fn table(self, header: &str, keys: &str) -> Self {
        self.raw(&format!("[{header}]\n{keys}"))
    }

    /// `[reservations]` on the ledger at `ledger`.
    #[must_use]
    pub fn reservations(self, ledger: &Path) -> Self {
        self.raw(&format!("[reservations]\nledger = {}", quote(ledger.display())))
    }

    /// `[log]` as JSON lines, as [`Spillway`](crate::Spillway) reads them.
    #[must_use]
    pub fn json_logs(self) -> Self {
        self.raw("[log]\nformat = \"json\"")
    }

    /// A route (`[[routes]]`) taking `path` to `upstream`.
    #[must_use]
    pub fn route(self, path: &str, upstream: &str) -> Self {
        self.raw(&format!("[[routes]]\npath = {}\nupstream = {}", quote(path), quote(upstream)))
    }

    /// A route taking `path` to the reservation API.
    #[must_use]
    pub fn reservations_route(self, path: &str) -> Self {
        self.raw(&format!("[[routes]]\npath = {}\ntarget = \"reservations\"", quote(path)))
    }

    /// The policies of the route added last.
    #[must_use]
    pub fn policies(self, policies: &[&str]) -> Self {
        let list: Vec<String> = policies.iter().map(quote).collect();
        self.raw(&format!("policies = [{}]", list.join(", ")))
    }

    /// TOML as is, after everything so far: anything the other methods do not say.
    #[must_use]
    pub fn raw(mut self, toml: &str) -> Self {
        push(&mut self.body, toml);
        self
    }

    /// The whole file.
    pub fn text(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n{}{}",
            self.server, self.body
        )
    }

    /// The file written to `path`, for the real binary.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.text()).unwrap();
    }

    /// The parsed config; panics with the text if it does not parse.
    pub fn build(&self) -> Config {
        let text = self.text();
        Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }
}

/// A config with both listeners on port 0 and the test token, plus `rest` as is.
pub fn config(rest: &str) -> Config {
    Conf::new().raw(rest).build()
}

fn push(text: &mut String, toml: &str) {
    if !toml.is_empty() {
        text.push_str(toml);
        if !toml.ends_with('\n') {
            text.push('\n');
        }
    }
}

/// `value` as a TOML basic string.
fn quote(value: impl Display) -> String {
    let mut out = String::from("\"");
    for c in value.to_string().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
