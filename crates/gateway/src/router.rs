//! Which route takes a request: the most specific host first, then the longest path prefix.
//!
//! Hosts are tried from most to least specific (exact name, then `*.suffix` wildcards from the longest
//! suffix, then routes with no host); within a host the longest matching prefix wins. A host whose routes
//! have no matching prefix falls through to the less specific hosts, so a catch-all route still catches.
//!
//! ## The request line, reserved endpoints, then routing
//!
//! **The request line.** First, `check_request_line` refuses what has no single meaning: two `Host` headers or
//! none (`400 bad_request`: the gateway and the origin could each read a different one), `CONNECT`
//! (`405`), a target over 8 KiB (`414 uri_too_long`). Then the path is normalised (`crates/core/src/path.rs`:
//! unreserved escapes decoded, slashes merged, dot segments resolved; encoded `/` or `\`, a raw `\` and NUL
//! refused as `400 bad_path`) and, if that changed it, the request's URI is rewritten, so that routing, the
//! reserved endpoints, every policy and the origin see the same path.
//!
//! **Reserved endpoints.** Next, `route()` in `server.rs` checks whether the path starts with
//! `/_spillway/`. Such requests are answered by the kind that serves them (`Components::reserved`; the rooms' in `room/reserved.rs`),
//! on every host. They come before routing and before the global limits (see `server.rs`), and they never reach an
//! origin:
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /_spillway/rooms/NAME/status` | `200` with the room status JSON, `Retry-After` and `Cache-Control: no-store`. It runs the same gate as the room policy (below), so it can hand out a ticket or, when it is the client's turn, a pass; a client with a valid pass gets state `admitted`. |
//! | `POST /_spillway/rooms/NAME/leave` | Gives up the place or ends the session (`RoomHandle::leave`) and clears both cookies. `200` with JSON `{"room","state":"left","had_place"}`, or a short page for browsers. |
//! | `GET /_spillway/assets/room.css` | The built-in page's stylesheet, `Cache-Control: public, max-age=3600`. |
//! | a room name that is not configured | `404` `unknown_room` |
//! | another method on `status` or `leave` | `405` `method_not_allowed` |
//! | any other path under `/_spillway/` | `404` `no_route` |
//!
//! A room is reachable here whether or not a route uses it. Reserved requests have no route, so they are not
//! counted in `spillway_http_requests_total`; the access log records them with an empty `route`. The answers
//! are described for clients in `docs/WAITING_ROOM.md`.
//!
//! **Routing.** The `Router` is built once per config version from the routes' `host` and `path`. Host
//! patterns are tried from most to least specific:
//!
//! 1. the exact host;
//! 2. `*.suffix` wildcards, longest suffix first;
//! 3. routes without a host.
//!
//! Within a group, the longest matching path prefix wins.
//!
//! - Prefixes match on segment boundaries: `/api` matches `/api`, `/api/` and `/api/x`, but not `/apix`.
//! - Prefixes match in any ASCII case (`/API/x` takes the `/api` route), so an origin that ignores case cannot be
//!   reached around the route's room or limit; the path is forwarded in the client's case.
//! - If a host's group has no matching prefix, the search falls through to the less specific groups.
//! - Request hosts are lowercased, and a port and a trailing dot are removed before matching.
//!
//! No match gives `404` with the code `no_route`.

use std::borrow::Cow;
use std::collections::HashMap;

/// Route indexes grouped by host, each group ordered longest prefix first.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<String, Vec<Prefix>>,
    /// (".example.com", prefixes), longest suffix first.
    wildcard: Vec<(String, Vec<Prefix>)>,
    any: Vec<Prefix>,
}

#[derive(Debug)]
struct Prefix {
    /// Without a trailing slash, except the root "/".
    path: String,
    route: usize,
}

impl Router {
    /// `routes` yields each route's host pattern and path prefix, in route order.
    pub fn new<'a>(routes: impl IntoIterator<Item = (Option<&'a str>, &'a str)>) -> Self {
        let mut router = Self::default();
        for (route, (host, path)) in routes.into_iter().enumerate() {
            let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
            let prefix = Prefix { path: path.to_string(), route };
            match host.map(str::to_ascii_lowercase) {
                None => router.any.push(prefix),
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => match router.wildcard.iter_mut().find(|(s, _)| s == suffix) {
                        Some((_, list)) => list.push(prefix),
                        None => router.wildcard.push((suffix.to_string(), vec![prefix])),
                    },
                    None => router.exact.entry(h).or_default().push(prefix),
                },
            }
        }
        let longest_first = |p: &Prefix| std::cmp::Reverse(p.path.len());
        router.any.sort_by_key(longest_first);
        router.exact.values_mut().for_each(|l| l.sort_by_key(longest_first));
        router.wildcard.iter_mut().for_each(|(_, l)| l.sort_by_key(longest_first));
        router.wildcard.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        router
    }

    /// `host` as the client sent it (any port is ignored); `path` without the query.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<usize> {
        if let Some(host) = host.map(normalize_host) {
            if let Some(found) = self.exact.get(host.as_ref()).and_then(|l| longest(l, path)) {
                return Some(found);
            }
            for (suffix, list) in &self.wildcard {
                if host.len() > suffix.len()
                    && host.ends_with(suffix.as_str())
                    && let Some(found) = longest(list, path)
                {
                    return Some(found);
                }
            }
        }
        longest(&self.any, path)
    }
}

fn longest(list: &[Prefix], path: &str) -> Option<usize> {
    list.iter().find(|p| prefix_matches(&p.path, path)).map(|p| p.route)
}

/// `/api` matches `/api`, `/api/` and `/api/x` but not `/apix`; and `/API/x`, in any ASCII case, because an
/// origin that ignores case (many do) would otherwise serve `/SALE/` around the room in front of `/sale`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let (prefix, path) = (prefix.as_bytes(), path.as_bytes());
    prefix == b"/"
        || (path.len() >= prefix.len()
            && path[..prefix.len()].eq_ignore_ascii_case(prefix)
            && matches!(path.get(prefix.len()), None | Some(b'/')))
}

fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.split(':').next().unwrap_or(host),
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn router() -> Router {
        Router::new([
            (None, "/"),                             // 0
            (None, "/api"),                          // 1
            (Some("shop.example.com"), "/"),         // 2
            (Some("shop.example.com"), "/api/v2/"),  // 3
            (Some("*.example.com"), "/static"),      // 4
            (Some("*.eu.example.com"), "/static"),   // 5
            (Some("admin.example.com"), "/private"), // 6
        ])
    }

    #[test]
    fn host_then_longest_prefix() {
        let r = router();
        assert_eq!(r.route(Some("shop.example.com"), "/api/v2/items"), Some(3));
        assert_eq!(r.route(Some("SHOP.example.com:8443"), "/api/v1"), Some(2));
        assert_eq!(r.route(Some("img.example.com"), "/static/a.png"), Some(4));
        assert_eq!(r.route(Some("x.eu.example.com"), "/static/a.png"), Some(5));
        assert_eq!(r.route(Some("example.com"), "/static/a.png"), Some(0));
        assert_eq!(r.route(None, "/api/x"), Some(1));
        assert_eq!(r.route(None, "/apix"), Some(0));
        // admin.example.com has no route for "/", so the any-host routes answer.
        assert_eq!(r.route(Some("admin.example.com"), "/api"), Some(1));
        assert_eq!(r.route(Some("admin.example.com"), "/private/x"), Some(6));
        assert_eq!(r.route(Some("[::1]:8080"), "/"), Some(0));
    }

    #[test]
    fn a_prefix_matches_in_any_ascii_case() {
        let r = Router::new([(None, "/"), (None, "/sale")]);
        for path in ["/sale", "/SALE/", "/Sale/shoes", "/sAlE"] {
            assert_eq!(r.route(None, path), Some(1), "{path}");
        }
        assert_eq!(r.route(None, "/SALEx"), Some(0));
    }

    #[test]
    fn no_match_without_catch_all() {
        let r = Router::new([(Some("a.test"), "/x")]);
        assert_eq!(r.route(Some("a.test"), "/y"), None);
        assert_eq!(r.route(Some("b.test"), "/x"), None);
    }

    proptest! {
        /// Against the definition: of all any-host prefixes that match, the longest wins.
        #[test]
        fn longest_prefix_wins(prefixes in proptest::collection::btree_set("(/[ab]{1,2}){1,3}", 1..8), path in "(/[ab]{1,2}){0,4}") {
            let prefixes: Vec<String> = prefixes.into_iter().collect();
            let r = Router::new(prefixes.iter().map(|p| (None, p.as_str())));
            let expected = prefixes.iter().enumerate()
                .filter(|(_, p)| path == **p || path.starts_with(&format!("{p}/")))
                .max_by_key(|(_, p)| p.len())
                .map(|(i, _)| i);
            prop_assert_eq!(r.route(None, &path), expected);
        }
    }
}
