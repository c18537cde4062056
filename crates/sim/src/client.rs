//! A simulated client: a browser that keeps its cookies, polls the protected claim endpoint every step until
//! it is let through, then claims once, retrying with the same idempotency key when an answer is lost.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not arrived yet.
    Coming,
    /// Polling: held by the room, or refused by a limit or an outage.
    Trying,
    /// Has its answer.
    Done,
}

#[derive(Debug)]
pub struct Client {
    pub ip: IpAddr,
    pub user: String,
    pub key: String,
    pub arrives_ms: u64,
    pub phase: Phase,
    cookies: BTreeMap<String, String>,
    /// The order in which it was first held in line, among the clients the checks follow.
    pub joined: Option<u64>,
    /// The step at which it first got past the room.
    pub through_at: Option<u64>,
    /// The step at which it first had its answer.
    pub answered_at: Option<u64>,
    /// Lost a reply from the room's store: where it stands in line is then no longer knowable to the client
    /// (a lost admission costs it its place), so the order checks leave it out.
    pub disturbed: bool,
}

impl Client {
    pub fn new(n: u64, arrives_ms: u64) -> Self {
        let ip = IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        Self {
            ip,
            user: format!("user-{n}"),
            key: format!("key-{n}"),
            arrives_ms,
            phase: Phase::Coming,
            cookies: BTreeMap::new(),
            joined: None,
            through_at: None,
            answered_at: None,
            disturbed: false,
        }
    }

    /// The `Cookie` header it sends.
    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty())
            .then(|| self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    /// Takes the answer's `Set-Cookie`s, as a browser would (an empty value or `Max-Age=0` deletes).
    pub fn take_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or("");
            let Some((name, v)) = pair.split_once('=') else { continue };
            let deleted = v.is_empty() || value.contains("Max-Age=0");
            if deleted {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), v.to_string());
            }
        }
    }
}
