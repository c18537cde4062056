//! One user's cookies. The room's ticket and pass are how it knows a user again, so each simulated user
//! keeps its own, or a thousand users would look like one (or like a thousand newcomers on every poll).

use std::collections::BTreeMap;

use http::HeaderMap;

#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: BTreeMap<String, String>,
}

impl Jar {
    /// Takes every `Set-Cookie` of an answer; `Max-Age=0` or an `Expires` in the past (which the gateway
    /// only writes to clear) removes the cookie. Paths and domains are ignored: one user talks to one site.
    pub fn store(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(http::header::SET_COOKIE) {
            let Ok(set) = set.to_str() else { continue };
            let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
            let Some((name, value)) = pair.split_once('=') else { continue };
            let attrs = attrs.to_ascii_lowercase();
            let (name, value) = (name.trim(), value.trim());
            if attrs.contains("max-age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// The `Cookie` header to send, or `None` when the jar is empty.
    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_replaces_and_clears() {
        let mut jar = Jar::default();
        let mut h = HeaderMap::new();
        h.append("set-cookie", "spw_ticket_sale=AAA; Path=/; Max-Age=120; HttpOnly".parse().unwrap());
        h.append("set-cookie", "other=1".parse().unwrap());
        jar.store(&h);
        assert_eq!(jar.header().as_deref(), Some("other=1; spw_ticket_sale=AAA"));
        let mut h = HeaderMap::new();
        h.append("set-cookie", "spw_ticket_sale=; Path=/; Max-Age=0".parse().unwrap());
        h.append("set-cookie", "spw_pass_sale=BBB; Path=/".parse().unwrap());
        jar.store(&h);
        assert_eq!(jar.get("spw_ticket_sale"), None);
        assert_eq!(jar.get("spw_pass_sale"), Some("BBB"));
    }
}
