//! What a proxy must change in the headers it forwards (RFC 9110 §7.6, RFC 7239).
//!
//! ## Per-request setup
//!
//! `handle` runs once per request. It:
//!
//! 1. loads the current `Runtime` from the `ArcSwap`. The request uses this version of the config from start
//!    to end, even if a reload happens meanwhile;
//! 2. decides the error format from `Accept` (`error.rs`);
//! 3. takes the request id. An incoming `X-Request-Id` is kept if it is 1 to 128 visible ASCII characters.
//!    Otherwise a random 32-character hex id is made (`headers.rs`).
//!
//! The host used for routing is the `Host` header. HTTP/2 requests carry `:authority` instead, which hyper
//! places in the URI.

use std::net::IpAddr;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, HeaderValue, UPGRADE};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one connection, not the message, and so must not cross the proxy.
const HOP_BY_HOP: [&HeaderName; 8] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &http::header::PROXY_AUTHENTICATE,
    &http::header::PROXY_AUTHORIZATION,
    &http::header::TE,
    &http::header::TRAILER,
    &http::header::TRANSFER_ENCODING,
];

/// Removes hop-by-hop headers, including every header the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Nearly every message has none of them: one pass over the names it has is much cheaper than a hash
    // lookup for each of the nine names it might have.
    if !headers.keys().any(|name| name == UPGRADE || HOP_BY_HOP.contains(&name)) {
        return;
    }
    if headers.contains_key(&CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(&CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(UPGRADE);
}

/// This hop's part of `X-Forwarded-For` and `Forwarded`, rendered once per client connection: formatting
/// the client address on every request was a tenth of the proxy's own CPU time.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// The client address as `X-Forwarded-For` lists it.
    client: HeaderValue,
    proto: &'static str,
    /// `for=...;proto=...`, to which each request adds its own `;host=...`.
    forwarded: String,
}

impl Forwarding {
    pub fn new(client: IpAddr, proto: &'static str) -> Self {
        let forwarded = match client {
            IpAddr::V4(ip) => format!("for={ip};proto={proto}"),
            IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={proto}"),
        };
        let client = HeaderValue::from_maybe_shared(Bytes::from(client.to_string()))
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self { client, proto, forwarded }
    }

    /// Appends this hop to `X-Forwarded-For` and `Forwarded` and states the client's scheme, so the origin
    /// sees who really called even through several proxies.
    pub fn apply(&self, headers: &mut HeaderMap, host: Option<&str>) {
        let xff = match appended(headers, &X_FORWARDED_FOR, self.client.to_str().unwrap_or("")) {
            Some(list) => list,
            None => self.client.clone(),
        };
        headers.insert(&X_FORWARDED_FOR, xff);
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(self.proto));

        let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
        let mut fwd = String::with_capacity(self.forwarded.len() + host.map_or(0, |h| h.len() + 8));
        fwd.push_str(&self.forwarded);
        if let Some(host) = host {
            fwd.push_str(";host=\"");
            fwd.push_str(host);
            fwd.push('"');
        }
        let fwd = appended(headers, &FORWARDED, &fwd).or_else(|| HeaderValue::from_maybe_shared(Bytes::from(fwd)).ok());
        if let Some(v) = fwd {
            headers.insert(&FORWARDED, v);
        }
    }
}

/// `existing, ..., hop` when the message already carries `name`; `None` when it does not.
fn appended(headers: &HeaderMap, name: &HeaderName, hop: &str) -> Option<HeaderValue> {
    let mut existing = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).peekable();
    existing.peek()?;
    let mut list = String::with_capacity(64);
    for value in existing {
        list.push_str(value);
        list.push_str(", ");
    }
    list.push_str(hop);
    HeaderValue::from_maybe_shared(Bytes::from(list)).ok()
}

/// Keeps a caller's request id if it is sane (so traces join up across systems), otherwise makes one.
pub fn request_id(headers: &HeaderMap, entropy: &crate::clock::Entropy) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut id = [0u8; 32];
    let n = entropy.u128();
    for (i, slot) in id.iter_mut().enumerate() {
        *slot = b"0123456789abcdef"[((n >> (i * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// Bytes the request line and headers take on the wire, to enforce `max_header_bytes` the same way for
/// HTTP/1.1 and HTTP/2.
pub fn head_size(uri: &http::Uri, headers: &HeaderMap) -> u64 {
    let uri = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let headers: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    (uri + 16 + headers) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret-Hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarding_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        let hop = Forwarding::new("::1".parse().unwrap_or(IpAddr::from([0; 16])), "https");
        hop.apply(&mut h, Some("shop.example:8443"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https;host=\"shop.example:8443\"");

        let mut h = HeaderMap::new();
        h.insert("forwarded", HeaderValue::from_static("for=203.0.113.7"));
        Forwarding::new(IpAddr::from([192, 0, 2, 1]), "http").apply(&mut h, Some("bad\"host"));
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(h["forwarded"], "for=203.0.113.7, for=192.0.2.1;proto=http");
    }

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        let made = request_id(&h, &crate::clock::Entropy::system());
        assert_eq!(made.len(), 32);
        assert_ne!(made, request_id(&h, &crate::clock::Entropy::system()));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h, &crate::clock::Entropy::system()), "abc-123");
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h, &crate::clock::Entropy::system()).len(), 32);
    }
}
