//! Checks that need the whole file: references between sections, duplicates, sane ranges.

use std::collections::{BTreeMap, HashSet};

use crate::keys::MIN_SECRET_BYTES;
use crate::{
    Action, AlgorithmKind, CacheConfig, Config, ConfigError, InventoryConfig, KeyPart, LimitConfig, Refill, RoomConfig,
    ShieldConfig, UpstreamConfig,
};

/// Most requests an exact sliding log may count per key: it keeps one timestamp per request.
const MAX_LOG_LIMIT: u64 = 10_000;

/// Most addresses an upstream may list; the proxy tracks tried addresses in a 64-bit set.
const MAX_ADDRESSES: usize = 64;

pub(crate) fn validate(config: &Config) -> Result<(), ConfigError> {
    server(config)?;
    keys(config)?;
    for (name, upstream) in &config.upstreams {
        self::upstream(name, upstream)?;
    }
    for (name, room) in &config.rooms {
        self::room(name, room, !config.keys.is_empty())?;
    }
    for (name, limit) in &config.limits {
        self::limit(name, limit, config)?;
    }
    for (name, cache) in &config.caches {
        self::cache(name, cache)?;
    }
    for (name, shield) in &config.shields {
        self::shield(name, shield)?;
    }
    for (name, inventory) in &config.inventories {
        self::inventory(name, inventory)?;
    }
    if let Some(header) = &config.reservations.user_header
        && (header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(ConfigError::invalid("reservations.user_header", "must be a header name, like \"x-user-id\""));
    }
    routes(config)
}

fn cache(name: &str, c: &CacheConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("caches.{name}.{field}");
    if !is_name(name) {
        return Err(ConfigError::invalid(format!("caches.{name}"), "name must be letters, digits, '-' or '_'"));
    }
    if c.ttl.is_some_and(|t| t.get().is_zero()) {
        return Err(ConfigError::invalid(key("ttl"), "must be greater than 0, or left out"));
    }
    if !(0.0..=0.5).contains(&c.ttl_jitter) {
        return Err(ConfigError::invalid(key("ttl_jitter"), "a share from 0 to 0.5"));
    }
    if !(0.0..=10.0).contains(&c.xfetch_beta) {
        return Err(ConfigError::invalid(key("xfetch_beta"), "from 0 (off) to 10"));
    }
    if c.max_object.get() == 0 || c.max_object.get() > c.max_memory.get() {
        return Err(ConfigError::invalid(key("max_object"), "greater than 0 and at most max_memory"));
    }
    for (i, h) in c.key_headers.iter().enumerate() {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(ConfigError::invalid(format!("caches.{name}.key_headers[{i}]"), "must be a header name"));
        }
    }
    if c.coalesce_wait.get().is_zero() {
        return Err(ConfigError::invalid(key("coalesce_wait"), "must be greater than 0"));
    }
    Ok(())
}

fn shield(name: &str, s: &ShieldConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("shields.{name}.{field}");
    if !is_name(name) {
        return Err(ConfigError::invalid(format!("shields.{name}"), "name must be letters, digits, '-' or '_'"));
    }
    if s.timeout.get().is_zero() {
        return Err(ConfigError::invalid(key("timeout"), "must be greater than 0"));
    }
    if s.retries > 10 {
        return Err(ConfigError::invalid(key("retries"), "at most 10"));
    }
    for (field, rate) in
        [("retry_budget", s.retry_budget), ("failure_rate", s.failure_rate), ("slow_call_rate", s.slow_call_rate)]
    {
        if !(0.0..=1.0).contains(&rate) || (field != "retry_budget" && rate == 0.0) {
            return Err(ConfigError::invalid(
                key(field),
                "a share: greater than 0 and at most 1 (0 allowed for retry_budget)",
            ));
        }
    }
    for (i, f) in s.failure_on.iter().enumerate() {
        let ok = matches!(f.as_str(), "5xx" | "4xx" | "timeout" | "connect")
            || f.parse::<u16>().is_ok_and(|c| (400..=599).contains(&c));
        if !ok {
            return Err(ConfigError::invalid(
                format!("shields.{name}.failure_on[{i}]"),
                format!("{f:?}: one of \"5xx\", \"4xx\", a status from 400 to 599, \"timeout\", \"connect\""),
            ));
        }
    }
    s.parsed_window().map_err(|reason| ConfigError::invalid(key("window"), reason))?;
    if s.minimum_calls == 0 {
        return Err(ConfigError::invalid(key("minimum_calls"), "must be at least 1"));
    }
    if s.half_open_calls == 0 {
        return Err(ConfigError::invalid(key("half_open_calls"), "must be at least 1"));
    }
    if s.open_for.get().is_zero() {
        return Err(ConfigError::invalid(key("open_for"), "must be greater than 0"));
    }
    match (s.max_concurrency, s.adaptive) {
        (Some(0), _) => return Err(ConfigError::invalid(key("max_concurrency"), "must be at least 1")),
        (None, Some(_)) => {
            return Err(ConfigError::invalid(key("adaptive"), "needs max_concurrency, the most it may reach"));
        }
        (Some(max), Some(_)) if s.min_concurrency == 0 || s.min_concurrency > max => {
            return Err(ConfigError::invalid(
                key("min_concurrency"),
                format!("must be from 1 to max_concurrency ({max})"),
            ));
        }
        _ => {}
    }
    if let Some(f) = &s.fallback
        && !(200..=599).contains(&f.status)
    {
        return Err(ConfigError::invalid(key("fallback.status"), "a status from 200 to 599"));
    }
    Ok(())
}

pub(crate) fn inventory(name: &str, inv: &InventoryConfig) -> Result<(), ConfigError> {
    let key = |field: &str| format!("inventories.{name}.{field}");
    if !is_name(name) || name.len() > 64 {
        return Err(ConfigError::invalid(
            format!("inventories.{name}"),
            "name must be 1-64 letters, digits, '-' or '_'",
        ));
    }
    let units = inv.unit_names().map_err(|reason| ConfigError::invalid(key("units"), reason))?;
    match (inv.stock, units.is_empty()) {
        (Some(_), false) => return Err(ConfigError::invalid(key("units"), "give either stock or units, not both")),
        (None, true) => {
            return Err(ConfigError::invalid(
                key("stock"),
                "required: a count (stock = 1000) or units = [\"A-1..20\"]",
            ));
        }
        _ => {}
    }
    let mut seen = HashSet::new();
    if let Some(dup) = units.iter().find(|u| !seen.insert(u.as_str())) {
        return Err(ConfigError::invalid(key("units"), format!("unit {dup:?} is listed twice")));
    }
    if let Some(bad) = units.iter().find(|u| u.is_empty() || u.len() > 64 || u.contains(['/', '?', '#', ' '])) {
        return Err(ConfigError::invalid(
            key("units"),
            format!("{bad:?}: a unit name is 1-64 characters, no '/', '?', '#' or spaces"),
        ));
    }
    let attributes = inv.unit_attributes().map_err(|reason| ConfigError::invalid(key("attributes"), reason))?;
    if let Some(unknown) = attributes.keys().find(|u| !seen.contains(u.as_str())) {
        return Err(ConfigError::invalid(key("attributes"), format!("no unit {unknown:?}")));
    }
    if inv.per_user_limit == Some(0) {
        return Err(ConfigError::invalid(key("per_user_limit"), "must be at least 1, or left out for no limit"));
    }
    if inv.hold.is_some_and(|h| h.get().as_secs() < 1) {
        return Err(ConfigError::invalid(key("hold"), "must be at least 1s"));
    }
    if let (Some(open), Some(close)) = (&inv.opens_at, &inv.closes_at)
        && close.unix() <= open.unix()
    {
        return Err(ConfigError::invalid(key("closes_at"), format!("must be after opens_at ({open})")));
    }
    Ok(())
}

fn limit(name: &str, l: &LimitConfig, config: &Config) -> Result<(), ConfigError> {
    let key = |field: &str| format!("limits.{name}.{field}");
    if !is_name(name) {
        return Err(ConfigError::invalid(format!("limits.{name}"), "name must be letters, digits, '-' or '_'"));
    }
    let shorthand = l.rate.is_some() || l.algorithm.is_some() || l.burst.is_some() || l.refill.is_some();
    if shorthand && !l.bands.is_empty() {
        return Err(ConfigError::invalid(
            key("bands"),
            "write either rate/algorithm/burst/refill on the limit (one band) or [[bands]], not both",
        ));
    }
    if l.bands.is_empty() && l.rate.is_none() {
        return Err(ConfigError::invalid(key("rate"), "required (or give [[bands]]), for example rate = \"10/s\""));
    }
    let mut names = HashSet::new();
    for (i, band) in l.effective_bands().iter().enumerate() {
        let bkey = |field: &str| {
            if l.bands.is_empty() { key(field) } else { format!("limits.{name}.bands[{i}].{field}") }
        };
        if band.burst.is_some()
            && matches!(
                band.algorithm,
                AlgorithmKind::FixedWindow | AlgorithmKind::SlidingWindow | AlgorithmKind::SlidingLog
            )
        {
            return Err(ConfigError::invalid(bkey("burst"), "windows have no burst: the rate's count is the limit"));
        }
        if band.burst == Some(0) {
            return Err(ConfigError::invalid(bkey("burst"), "must be at least 1"));
        }
        if band.refill == Refill::Interval && band.algorithm != AlgorithmKind::TokenBucket {
            return Err(ConfigError::invalid(bkey("refill"), "only a token_bucket has a refill mode"));
        }
        if band.algorithm == AlgorithmKind::SlidingLog && band.rate.count > MAX_LOG_LIMIT {
            return Err(ConfigError::invalid(
                bkey("rate"),
                format!("a sliding_log keeps every request: at most {MAX_LOG_LIMIT} per period (use sliding_window)"),
            ));
        }
        let default_name = if l.bands.len() > 1 { format!("{name}-{i}") } else { name.to_string() };
        if let Some(n) = band.name.as_ref().or(Some(&default_name)) {
            if !is_name(n) {
                return Err(ConfigError::invalid(bkey("name"), "must be letters, digits, '-' or '_'"));
            }
            if !names.insert(n.clone()) {
                return Err(ConfigError::invalid(bkey("name"), format!("duplicate band name {n:?}")));
            }
        }
    }
    for part in &l.key.0 {
        if let KeyPart::Pass(room) = part
            && !config.rooms.contains_key(room)
        {
            return Err(ConfigError::invalid(key("key"), format!("pass:{room}: no rooms.{room}")));
        }
    }
    if l.max_keys == 0 {
        return Err(ConfigError::invalid(key("max_keys"), "must be at least 1"));
    }
    if l.action == Action::Throttle && l.max_wait.get().is_zero() {
        return Err(ConfigError::invalid(key("max_wait"), "must be greater than 0 to throttle"));
    }
    Ok(())
}

fn room(name: &str, r: &RoomConfig, have_keys: bool) -> Result<(), ConfigError> {
    let key = |field: &str| format!("rooms.{name}.{field}");
    if !is_name(name) || name.len() > 64 {
        return Err(ConfigError::invalid(format!("rooms.{name}"), "name must be 1-64 letters, digits, '-' or '_'"));
    }
    if !have_keys {
        return Err(ConfigError::invalid(
            "keys",
            format!(
                "rooms.{name} needs at least one signing key for its tickets and passes (add [[keys]] with an id and a secret)"
            ),
        ));
    }
    if r.new_users_per_minute == 0 {
        return Err(ConfigError::invalid(
            key("new_users_per_minute"),
            "must be at least 1 (pause the room to stop admissions)",
        ));
    }
    if r.total_active_users == Some(0) {
        return Err(ConfigError::invalid(key("total_active_users"), "must be at least 1, or left out for no cap"));
    }
    if r.session_duration.get().as_secs() < 1 {
        return Err(ConfigError::invalid(key("session_duration"), "must be at least 1s"));
    }
    if r.queue_grace.get().as_secs() < 5 {
        return Err(ConfigError::invalid(
            key("queue_grace"),
            "must be at least 5s: waiting pages refresh every third of it, and faster polling only adds load",
        ));
    }
    if r.max_waiting == Some(0) {
        return Err(ConfigError::invalid(key("max_waiting"), "must be at least 1, or left out for no limit"));
    }
    match (&r.prequeue_from, &r.opens_at) {
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                key("prequeue_from"),
                "needs opens_at: the pre-queue is drawn at opening",
            ));
        }
        (Some(from), Some(open)) if from.unix() >= open.unix() => {
            return Err(ConfigError::invalid(key("prequeue_from"), format!("must be before opens_at ({open})")));
        }
        _ => {}
    }
    if let (Some(open), Some(close)) = (&r.opens_at, &r.closes_at)
        && close.unix() <= open.unix()
    {
        return Err(ConfigError::invalid(key("closes_at"), format!("must be after opens_at ({open})")));
    }
    if r.title.as_ref().is_some_and(|t| t.chars().count() > 200) {
        return Err(ConfigError::invalid(key("title"), "must be at most 200 characters"));
    }
    Ok(())
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
    if u.addresses.len() > MAX_ADDRESSES {
        return Err(ConfigError::invalid(key("addresses"), format!("at most {MAX_ADDRESSES} addresses")));
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

fn routes(config: &Config) -> Result<(), ConfigError> {
    let (routes, upstreams) = (&config.routes, &config.upstreams);
    // Unnamed routes are called `route<N>`; an explicit name must not collide with one of those.
    let mut names: HashSet<String> =
        routes.iter().enumerate().filter(|(_, r)| r.name.is_none()).map(|(i, _)| format!("route{i}")).collect();
    let mut matches: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for (i, route) in routes.iter().enumerate() {
        let key = |field: &str| format!("routes[{i}].{field}");
        if let Some(name) = &route.name {
            if !is_name(name) {
                return Err(ConfigError::invalid(key("name"), "must be letters, digits, '-' or '_'"));
            }
            if !names.insert(name.clone()) {
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
        match (&route.upstream, route.target) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(key("target"), "give either upstream or target, not both"));
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    key("upstream"),
                    "required (or target = \"reservations\" for the built-in reservation API)",
                ));
            }
            (Some(upstream), None) if !upstreams.contains_key(upstream) => {
                let hint = closest(upstream, upstreams.keys().map(String::as_str))
                    .map(|c| format!("; did you mean {c:?}?"))
                    .unwrap_or_default();
                return Err(ConfigError::invalid(key("upstream"), format!("no upstream named {upstream:?}{hint}")));
            }
            _ => {}
        }
        let host = route.host.as_deref().unwrap_or("").to_ascii_lowercase();
        if let Some(first) = matches.insert((host, normalized(&route.path)), i) {
            return Err(ConfigError::invalid(format!("routes[{i}]"), format!("same host and path as routes[{first}]")));
        }
        let mut kinds = HashSet::new();
        for (p, policy) in route.policies.iter().enumerate() {
            let key = format!("routes[{i}].policies[{p}]");
            let (section, names) = (policy.kind.section(), policy.kind.names(config));
            if !names.contains(&policy.name.as_str()) {
                let hint = closest(&policy.name, names.iter().copied())
                    .map(|c| format!("; did you mean {c:?}?"))
                    .unwrap_or_default();
                return Err(ConfigError::invalid(key, format!("no {section}.{}{hint}", policy.name)));
            }
            if policy.kind.once_per_route() && !kinds.insert(policy.kind) {
                return Err(ConfigError::invalid(key, "a route passes through at most one room"));
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
