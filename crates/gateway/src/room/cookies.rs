//! Reading and writing the room's cookies: one ticket and one pass per room, so rooms never see each
//! other's tokens.

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

const TICKET_PREFIX: &str = "spw_ticket_";
const PASS_PREFIX: &str = "spw_pass_";

pub fn ticket_name(room: &str) -> String {
    format!("{TICKET_PREFIX}{room}")
}

pub fn pass_name(room: &str) -> String {
    format!("{PASS_PREFIX}{room}")
}

/// The value of cookie `name`, from any of the request's Cookie headers (HTTP/2 may split them).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Marks a request whose room cookies must not reach the origin.
#[derive(Debug, Clone, Copy)]
pub struct StripRoomCookies;

/// Takes Spillway's own cookies out of the request, so the origin never sees tokens it has no use for.
pub fn strip_own(headers: &mut HeaderMap) {
    let mut kept = Vec::new();
    let mut changed = false;
    for value in headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else {
            kept.push(value.clone());
            continue;
        };
        let others: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|pair| !pair.starts_with(TICKET_PREFIX) && !pair.starts_with(PASS_PREFIX))
            .collect();
        if others.len() != text.split(';').count() {
            changed = true;
        }
        if !others.is_empty()
            && let Ok(v) = HeaderValue::from_str(&others.join("; "))
        {
            kept.push(v);
        }
    }
    if changed {
        headers.remove(COOKIE);
        for v in kept {
            headers.append(COOKIE, v);
        }
    }
}

/// Copies a pass being set on the response into the request's cookies.
pub fn carry_new_pass(set: &HeaderMap, request: &mut HeaderMap) {
    for value in set.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
        let pair = value.split(';').next().unwrap_or("");
        if pair.starts_with(PASS_PREFIX)
            && !value.contains("Max-Age=0")
            && let Ok(v) = HeaderValue::from_str(pair)
        {
            request.append(COOKIE, v);
        }
    }
}

/// `Set-Cookie` for a token; `max_age` 0 deletes it.
pub fn set(headers: &mut HeaderMap, name: &str, value: &str, max_age: u64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_headers_and_strips_only_ours() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; spw_pass_sale=PASS"));
        h.append(COOKIE, HeaderValue::from_static("spw_ticket_sale=\"T\"; b=2"));
        assert_eq!(get(&h, "spw_pass_sale"), Some("PASS"));
        assert_eq!(get(&h, "spw_ticket_sale"), Some("T"));
        assert_eq!(get(&h, "spw_ticket_other"), None);
        strip_own(&mut h);
        let left: Vec<_> = h.get_all(COOKIE).iter().map(|v| v.to_str().unwrap_or("")).collect();
        assert_eq!(left, ["a=1", "b=2"]);
    }
}
