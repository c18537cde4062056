//! What a proxy must change in the headers it forwards (RFC 9110 §7.6, RFC 7239).

use std::fmt::Write;
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, HeaderValue};

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
    headers.remove(http::header::UPGRADE);
}

/// Appends this hop to `X-Forwarded-For` and `Forwarded` and states the client's scheme, so the origin sees
/// who really called even through several proxies.
pub fn add_forwarding(headers: &mut HeaderMap, client: IpAddr, proto: &'static str, host: Option<&str>) {
    let mut xff = String::with_capacity(64);
    for existing in headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()) {
        xff.push_str(existing);
        xff.push_str(", ");
    }
    let _ = write!(xff, "{client}");
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));

    let mut fwd = String::with_capacity(64);
    for existing in headers.get_all(&FORWARDED).iter().filter_map(|v| v.to_str().ok()) {
        fwd.push_str(existing);
        fwd.push_str(", ");
    }
    match client {
        IpAddr::V4(ip) => write!(fwd, "for={ip}"),
        IpAddr::V6(ip) => write!(fwd, "for=\"[{ip}]\""),
    }
    .ok();
    let _ = write!(fwd, ";proto={proto}");
    if let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')) {
        let _ = write!(fwd, ";host=\"{host}\"");
    }
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(&FORWARDED, v);
    }
}

/// Keeps a caller's request id if it is sane (so traces join up across systems), otherwise makes one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return v.clone();
        }
    }
    let mut id = [0u8; 32];
    let n = fastrand::u128(..);
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
        add_forwarding(&mut h, "::1".parse().unwrap_or(IpAddr::from([0; 16])), "https", Some("shop.example:8443"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, ::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https;host=\"shop.example:8443\"");
    }

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        let made = request_id(&h);
        assert_eq!(made.len(), 32);
        assert_ne!(made, request_id(&h));
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
    }
}
