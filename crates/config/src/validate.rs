//! Checks that need the whole file: references between sections, duplicates, sane ranges.

use std::collections::{BTreeMap, HashSet};

use crate::keys::MIN_SECRET_BYTES;
use crate::{Config, ConfigError, RouteConfig, UpstreamConfig};

/// Policy kinds this build knows, each with the section its names refer to. Each policy capability adds its
/// line here and its section to [`Config`].
const POLICY_KINDS: &[&str] = &[];

pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    server(config)?;
    keys(config)?;
    for (name, upstream) in &config.upstreams {
        self::upstream(name, upstream)?;
    }
    routes(&config.routes, &config.upstreams)
}

fn server(config: &Config) -> Result<(), ConfigError> {
    let s = &config.server;
    if s.admin_token.is_none() {
        return Err(ConfigError::invalid(
            "server.admin_token",
            "required: the admin listener refuses every request without it (write \"env:NAME\" to keep it out of the file)",
        ));
    }
    if s.listen == s.admin_listen && s.listen.port() != 0 {
        return Err(ConfigError::invalid(
            "server.admin_listen",
            format!("same address as server.listen ({})", s.listen),
        ));
    }
    if !(1024..=1024 * 1024).contains(&s.max_header_bytes.get()) {
        return Err(ConfigError::invalid("server.max_header_bytes", "must be between 1KiB and 1MiB"));
    }
    if s.max_body_bytes.get() == 0 {
        return Err(ConfigError::invalid("server.max_body_bytes", "must be greater than 0"));
    }
    if s.header_read_timeout.get().is_zero() {
        return Err(ConfigError::invalid("server.header_read_timeout", "must be greater than 0"));
    }
    Ok(())
}

fn keys(config: &Config) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, key) in config.keys.iter().enumerate() {
        if key.id.is_empty() || !key.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ConfigError::invalid(format!("keys[{i}].id"), "must be non-empty letters, digits, '-' or '_'"));
        }
        if !seen.insert(&key.id) {
            return Err(ConfigError::invalid(format!("keys[{i}].id"), format!("duplicate key id {:?}", key.id)));
        }
        if key.secret.expose().len() < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                format!("keys[{i}].secret"),
                format!("must be at least {MIN_SECRET_BYTES} bytes (try `openssl rand -hex 32`)"),
            ));
        }
    }
    Ok(())
}

fn upstream(name: &str, u: &UpstreamConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("upstreams.{name}.{field}");
    if !is_name(name) {
        return Err(ConfigError::invalid(format!("upstreams.{name}"), "name must be letters, digits, '-' or '_'"));
    }
    if u.addresses.is_empty() {
        return Err(ConfigError::invalid(key("addresses"), "needs at least one \"host:port\""));
    }
    let mut seen = HashSet::new();
    for (i, addr) in u.addresses.iter().enumerate() {
        check_address(addr)
            .map_err(|reason| ConfigError::invalid(format!("upstreams.{name}.addresses[{i}]"), reason))?;
        if !seen.insert(addr) {
            return Err(ConfigError::invalid(
                format!("upstreams.{name}.addresses[{i}]"),
                format!("duplicate address {addr:?}"),
            ));
        }
    }
    for (field, value) in
        [("connect_timeout", u.connect_timeout), ("request_timeout", u.request_timeout), ("eject_for", u.eject_for)]
    {
        if value.get().is_zero() {
            return Err(ConfigError::invalid(key(field), "must be greater than 0"));
        }
    }
    if u.eject_after == 0 {
        return Err(ConfigError::invalid(key("eject_after"), "must be at least 1"));
    }
    Ok(())
}

fn check_address(addr: &str) -> Result<(), String> {
    if addr.contains("://") {
        return Err(format!("{addr:?}: write \"host:port\" without a scheme"));
    }
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").ok_or_else(|| format!("{addr:?}: expected \"[ipv6]:port\""))?,
        None => addr.rsplit_once(':').ok_or_else(|| format!("{addr:?}: expected \"host:port\""))?,
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!("{addr:?}: invalid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{addr:?}: port must be 1-65535")),
    }
}

fn routes(routes: &[RouteConfig], upstreams: &BTreeMap<String, UpstreamConfig>) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut matches: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        let key = |field: &str| format!("routes[{i}].{field}");
        if let Some(name) = &route.name {
            if !is_name(name) {
                return Err(ConfigError::invalid(key("name"), "must be letters, digits, '-' or '_'"));
            }
            if !names.insert(name) {
                return Err(ConfigError::invalid(key("name"), format!("duplicate route name {name:?}")));
            }
        }
        if let Some(host) = &route.host {
            check_host(host).map_err(|reason| ConfigError::invalid(key("host"), reason))?;
        }
        if !route.path.starts_with('/') {
            return Err(ConfigError::invalid(key("path"), format!("{:?} must start with '/'", route.path)));
        }
        if route.path.contains(['?', '#', ' ']) {
            return Err(ConfigError::invalid(key("path"), "a prefix is a path only: no '?', '#' or spaces"));
        }
        if !upstreams.contains_key(&route.upstream) {
            let hint = closest(&route.upstream, upstreams.keys().map(String::as_str))
                .map(|c| format!("; did you mean {c:?}?"))
                .unwrap_or_default();
            return Err(ConfigError::invalid(key("upstream"), format!("no upstream named {:?}{hint}", route.upstream)));
        }
        let host = route.host.as_deref().unwrap_or("").to_ascii_lowercase();
        if let Some(first) = matches.insert((host, normalized(&route.path)), i) {
            return Err(ConfigError::invalid(format!("routes[{i}]"), format!("same host and path as routes[{first}]")));
        }
        for (p, policy) in route.policies.iter().enumerate() {
            if !POLICY_KINDS.contains(&policy.kind.as_str()) {
                let known =
                    if POLICY_KINDS.is_empty() { "none in this version".to_string() } else { POLICY_KINDS.join(", ") };
                return Err(ConfigError::invalid(
                    format!("routes[{i}].policies[{p}]"),
                    format!("unknown policy kind {:?} (known kinds: {known})", policy.kind),
                ));
            }
        }
    }
    Ok(())
}

/// `/api/` and `/api` take the same requests.
fn normalized(path: &str) -> &str {
    if path.len() > 1 { path.trim_end_matches('/') } else { path }
}

fn check_host(host: &str) -> Result<(), String> {
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let ok = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name (write \"shop.example.com\" or \"*.example.com\", no port)"))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn closest<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates.map(|c| (strsim::levenshtein(wanted, c), c)).filter(|(d, _)| *d <= 2).min().map(|(_, c)| c)
}
