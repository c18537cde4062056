//! The client's address as the origin of the request, not just the last hop.
//!
//! Behind a load balancer every request comes from the balancer's address. Its `X-Forwarded-For` (or
//! `Forwarded`) says who it was for, but any client can write those headers too, so they are believed only
//! when the hop that sent them is a trusted proxy, and only back to the first hop that is not: the rightmost
//! untrusted address is the client. With no trusted proxies (the default) the peer address is the client.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::FORWARDED;
use ipnet::IpNet;

/// Which header the trusted proxies write. Only that one is read: a client can add the other itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    XForwardedFor,
    Forwarded,
}

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], header: ForwardedHeader) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = match header {
        ForwardedHeader::XForwardedFor => headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| address(s.trim()))
            .collect(),
        ForwardedHeader::Forwarded => headers
            .get_all(FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .collect(),
    };
    hops.into_iter().map(|ip| ip.to_canonical()).rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn address(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// The address in one `Forwarded` element's `for=` parameter: `for=192.0.2.1`, `for="[2001:db8::1]:443"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("for").then_some(v.trim().trim_matches('"'))
    })?;
    address(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        assert_eq!(resolve(ip("9.9.9.9"), &h, &[], ForwardedHeader::XForwardedFor), ip("9.9.9.9"));
        assert_eq!(resolve(ip("::ffff:9.9.9.9"), &h, &[], ForwardedHeader::XForwardedFor), ip("9.9.9.9"));
    }

    #[test]
    fn through_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_default()];
        let mut h = HeaderMap::new();
        // The client forged the first entry; the second was added by our own proxy chain.
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.7:5555, 10.0.0.2"));
        let xff = ForwardedHeader::XForwardedFor;
        assert_eq!(resolve(ip("10.0.0.1"), &h, &trusted, xff), ip("203.0.113.7"));
        let mut f = HeaderMap::new();
        f.insert(FORWARDED, HeaderValue::from_static("for=\"[2001:db8::1]:443\";proto=https, for=10.0.0.3"));
        f.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        assert_eq!(resolve(ip("10.0.0.1"), &f, &trusted, ForwardedHeader::Forwarded), ip("2001:db8::1"));
        assert_eq!(resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted, xff), ip("10.0.0.1"));
    }
}
