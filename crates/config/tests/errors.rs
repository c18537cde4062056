//! Every configuration error names the key and the reason.
#![allow(clippy::unwrap_used)]

use spillway_config::{Config, ConfigError, KeyPart};

const BASE: &str = r#"
[server]
admin_token = "t0ken"

[upstreams.shop]
addresses = ["127.0.0.1:3000"]
"#;

/// The signing key rooms need, as a literal so that cases can start with it.
macro_rules! key {
    () => {
        "[[keys]]\nid = \"k1\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n"
    };
}

const KEY: &str = key!();

/// Each case: its name, what follows [`BASE`] in the file, the key the error must start with and a part of
/// the reason it must give.
const CASES: &[(&str, &str, &str, &str)] = &[
    // Unknown keys and wrong types.
    ("unknown key in log", "[log]\nformat = \"text\"\nlevle = \"debug\"", "log.levle", "unknown key"),
    ("unknown key in a route", "[[routes]]\nupstream = \"shop\"\nupsteam = \"x\"", "routes[0].upsteam", "unknown key"),
    ("unknown key in a room", "[rooms.sale]\nrate = 1", "rooms.sale.rate", "unknown key"),
    ("a wrong type names the line", "[[routes]]\npath = 7\nupstream = \"shop\"", "routes[0].path", "line 9"),
    // Durations need units.
    (
        "a duration without a unit",
        "[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = 30",
        "upstreams.api.request_timeout",
        "ambiguous",
    ),
    (
        "a duration in unknown units",
        "[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = \"30 parsecs\"",
        "upstreams.api.request_timeout",
        "invalid duration",
    ),
    // Routes, upstreams, keys and policies.
    (
        "a path without a slash",
        "[[routes]]\npath = \"api\"\nupstream = \"shop\"",
        "routes[0].path",
        "must start with '/'",
    ),
    (
        "a host with a port",
        "[[routes]]\nhost = \"shop.example.com:80\"\nupstream = \"shop\"",
        "routes[0].host",
        "not a host name",
    ),
    ("an upstream without addresses", "[upstreams.api]\naddresses = []", "upstreams.api.addresses", "at least one"),
    (
        "an address with a scheme",
        "[upstreams.api]\naddresses = [\"http://a:1\"]",
        "upstreams.api.addresses[0]",
        "without a scheme",
    ),
    ("an address on port 0", "[upstreams.api]\naddresses = [\"a:0\"]", "upstreams.api.addresses[0]", "port"),
    ("a short signing secret", "[[keys]]\nid = \"k1\"\nsecret = \"short\"", "keys[0].secret", "at least 32 bytes"),
    (
        "two routes on the same host and path",
        "[[routes]]\npath = \"/api/\"\nupstream = \"shop\"\n[[routes]]\npath = \"/api\"\nupstream = \"shop\"",
        "routes[1]",
        "same host and path as routes[0]",
    ),
    (
        "a policy without its kind",
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"room\"]",
        "routes[0].policies[0]",
        "kind:name",
    ),
    (
        "an unknown policy kind",
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"teleport:x\"]",
        "routes[0].policies[0]",
        "unknown policy kind",
    ),
    (
        "a policy naming a missing room",
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"room:sale\"]",
        "routes[0].policies[0]",
        "no rooms.sale",
    ),
    (
        "a duplicate route name",
        "[[routes]]\nupstream = \"shop\"\n[[routes]]\nname = \"route0\"\npath = \"/x\"\nupstream = \"shop\"",
        "routes[1].name",
        "duplicate route name",
    ),
    // Rooms.
    (
        "a room without a signing key",
        "[rooms.sale]\nnew_users_per_minute = 60",
        "keys",
        "needs at least one signing key",
    ),
    (
        "a room admitting nobody",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 0"),
        "rooms.sale.new_users_per_minute",
        "at least 1",
    ),
    (
        "a room's queue grace under 5s",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nqueue_grace = \"2s\""),
        "rooms.sale.queue_grace",
        "at least 5s",
    ),
    (
        "an unknown queueing order",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nqueueing = \"lifo\""),
        "rooms.sale.queueing",
        "unknown variant",
    ),
    (
        "an opening time in words",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nopens_at = \"tomorrow\""),
        "rooms.sale.opens_at",
        "RFC 3339",
    ),
    (
        "an opening time as a TOML datetime",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nopens_at = 2026-12-01T10:00:00+09:00"),
        "rooms.sale.opens_at",
        "in quotes",
    ),
    (
        "a prequeue without an opening time",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nprequeue_from = \"2026-12-01T09:00:00+09:00\""),
        "rooms.sale.prequeue_from",
        "needs opens_at",
    ),
    (
        "a room closing before it opens",
        concat!(
            key!(),
            "[rooms.sale]\nnew_users_per_minute = 60\nopens_at = \"2026-12-01T09:00:00+09:00\"\n\
             closes_at = \"2026-12-01T08:00:00+09:00\""
        ),
        "rooms.sale.closes_at",
        "after opens_at",
    ),
    (
        "an unknown key in a room with a key",
        concat!(key!(), "[rooms.sale]\nnew_users_per_minute = 60\nsurprise = 1"),
        "rooms.sale.surprise",
        "unknown key",
    ),
    // Limits.
    ("a limit without a rate", "[limits.api]\nkey = \"ip\"", "limits.api.rate", "required"),
    ("a rate in words", "[limits.api]\nrate = \"ten/s\"", "limits.api.rate", "count/period"),
    ("an unknown limit key", "[limits.api]\nrate = \"10/s\"\nkey = \"teapot\"", "limits.api.key", "invalid key"),
    ("a burst of zero", "[limits.api]\nrate = \"10/s\"\nburst = 0", "limits.api.burst", "at least 1"),
    (
        "an interval refill outside a token bucket",
        "[limits.api]\nrate = \"10/s\"\nrefill = \"interval\"",
        "limits.api.refill",
        "token_bucket",
    ),
    (
        "a limit keyed on a missing room's pass",
        "[limits.api]\nrate = \"10/s\"\nkey = \"pass:sale\"",
        "limits.api.key",
        "no rooms.sale",
    ),
    (
        "an invalid allowed network",
        "[limits.api]\nrate = \"10/s\"\nallow = [\"10.0.0.0/33\"]",
        "limits.api.allow[0]",
        "invalid network",
    ),
    (
        "a rate and bands together",
        "[limits.api]\nrate = \"10/s\"\n[[limits.api.bands]]\nrate = \"1/s\"",
        "limits.api.bands",
        "not both",
    ),
    (
        "a sliding log too fast to keep",
        "[[limits.api.bands]]\nrate = \"100000/s\"\nalgorithm = \"sliding_log\"",
        "limits.api.bands[0].rate",
        "at most 10000",
    ),
    (
        "a policy naming a missing limit",
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"limit:nope\"]",
        "routes[0].policies[0]",
        "no limits.nope",
    ),
    // Inventories and the reservation API.
    ("an inventory without stock", "[inventories.drop]\nper_user_limit = 1\n", "inventories.drop.stock", "required"),
    (
        "stock and units together",
        "[inventories.drop]\nstock = 5\nunits = [\"A-1\"]\n",
        "inventories.drop.units",
        "not both",
    ),
    (
        "a unit listed twice",
        "[inventories.show]\nunits = [\"A-1..3\", \"A-2\"]\n",
        "inventories.show.units",
        "\"A-2\" is listed twice",
    ),
    (
        "a range written backwards",
        "[inventories.show]\nunits = [\"A-5..1\"]\n",
        "inventories.show.units",
        "a range is written",
    ),
    (
        "attributes of a missing unit",
        "[inventories.show]\nunits = [\"A-1..3\"]\n[inventories.show.attributes]\n\"B-1\" = { price = \"1\" }\n",
        "inventories.show.attributes",
        "no unit \"B-1\"",
    ),
    (
        "a per-user limit of zero",
        "[inventories.drop]\nstock = 5\nper_user_limit = 0\n",
        "inventories.drop.per_user_limit",
        "at least 1",
    ),
    (
        "a hold without a unit",
        "[inventories.drop]\nstock = 5\nhold = \"300\"\n",
        "inventories.drop.hold",
        "time unit needed",
    ),
    (
        "an inventory closing before it opens",
        "[inventories.drop]\nstock = 5\nopens_at = \"2026-12-04T10:00:00+09:00\"\ncloses_at = \"2026-12-04T09:00:00+09:00\"\n",
        "inventories.drop.closes_at",
        "after opens_at",
    ),
    ("an inventory name with a space", "[inventories.\"a b\"]\nstock = 5\n", "inventories.a b", "letters, digits"),
    (
        "a route without an upstream or target",
        "[[routes]]\npath = \"/r\"\n",
        "routes[0].upstream",
        "target = \"reservations\"",
    ),
    (
        "a route with an upstream and a target",
        "[[routes]]\npath = \"/r\"\nupstream = \"shop\"\ntarget = \"reservations\"\n",
        "routes[0].target",
        "not both",
    ),
    ("an unknown target", "[[routes]]\npath = \"/r\"\ntarget = \"coupons\"\n", "routes[0].target", "unknown variant"),
    (
        "a user header that is no header name",
        "[reservations]\nuser_header = \"x user\"\n",
        "reservations.user_header",
        "header name",
    ),
    // Shields and caches.
    ("an unknown failure kind", "[shields.api]\nfailure_on = [\"timeouts\"]\n", "shields.api.failure_on[0]", "one of"),
    ("a window without its unit", "[shields.api]\nwindow = \"100\"\n", "shields.api.window", "100 calls"),
    (
        "an adaptive cap without a maximum",
        "[shields.api]\nadaptive = \"gradient\"\n",
        "shields.api.adaptive",
        "needs max_concurrency",
    ),
    (
        "a minimum concurrency above the maximum",
        "[shields.api]\nmax_concurrency = 10\nmin_concurrency = 20\nadaptive = \"aimd\"\n",
        "shields.api.min_concurrency",
        "from 1 to",
    ),
    ("a failure rate above 1", "[shields.api]\nfailure_rate = 1.5\n", "shields.api.failure_rate", "a share"),
    ("more than 10 retries", "[shields.api]\nretries = 11\n", "shields.api.retries", "at most 10"),
    (
        "a fallback status below 200",
        "[shields.api]\nfallback = { status = 99, body = \"x\" }\n",
        "shields.api.fallback.status",
        "200 to 599",
    ),
    ("a ttl jitter above half", "[caches.c]\nttl_jitter = 0.9\n", "caches.c.ttl_jitter", "0 to 0.5"),
    (
        "an object bigger than the cache",
        "[caches.c]\nmax_memory = \"1KiB\"\nmax_object = \"2KiB\"\n",
        "caches.c.max_object",
        "at most max_memory",
    ),
    (
        "a cache key header that is no header name",
        "[caches.c]\nkey_headers = [\"a b\"]\n",
        "caches.c.key_headers[0]",
        "header name",
    ),
    (
        "a policy naming a missing cache",
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"cache:nope\"]\n",
        "routes[0].policies[0]",
        "no caches.nope",
    ),
    (
        "an unknown priority",
        "[[routes]]\nupstream = \"shop\"\npriority = \"urgent\"\n",
        "routes[0].priority",
        "unknown variant",
    ),
];

/// Why `extra` after [`BASE`] does not fail as it should, if it does not.
fn check(extra: &str, key: &str, reason: &str) -> Result<(), String> {
    let msg = match Config::parse(&format!("{BASE}\n{extra}")) {
        Ok(_) => return Err(format!("parsed, but should fail on {key}")),
        Err(e) => e.to_string(),
    };
    if !msg.starts_with(&format!("{key}: ")) {
        return Err(format!("{msg:?} should start with key {key:?}"));
    }
    if !msg.contains(reason) {
        return Err(format!("{msg:?} should contain {reason:?}"));
    }
    Ok(())
}

#[test]
fn every_error_names_the_key_and_the_reason() {
    let mut names = std::collections::BTreeSet::new();
    let failed: Vec<String> = CASES
        .iter()
        .filter(|(name, ..)| !names.insert(*name))
        .map(|(name, ..)| format!("{name}: a second case by this name"))
        .chain(CASES.iter().filter_map(|&(name, extra, key, reason)| {
            check(extra, key, reason).err().map(|why| format!("{name}: {why}"))
        }))
        .collect();
    assert!(failed.is_empty(), "{} of {} cases failed:\n{}", failed.len(), CASES.len(), failed.join("\n"));
}

#[test]
fn minimal_file_gets_defaults() {
    let config = Config::parse("[server]\nadmin_token = \"x\"\n").expect("valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.max_body_bytes.get(), 10 * 1024 * 1024);
    assert!(config.routes.is_empty());
}

#[test]
fn unknown_upstream_suggests_the_close_name() {
    let extra = "[[routes]]\npath = \"/\"\nupstream = \"shop\"\n[[routes]]\npath = \"/a\"\nupstream = \"shop\"\n[[routes]]\npath = \"/b\"\nupstream = \"shopp\"\n";
    let err = Config::parse(&format!("{BASE}\n{extra}")).expect_err("an unknown upstream");
    assert_eq!(err.to_string(), r#"routes[2].upstream: no upstream named "shopp"; did you mean "shop"?"#);
}

#[test]
fn a_duration_with_a_unit_parses() {
    let config = Config::parse(&format!("{BASE}\n[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = \"250ms\""))
        .expect("valid");
    assert_eq!(config.upstreams["api"].request_timeout.get().as_millis(), 250);
}

#[test]
fn secrets_from_the_environment() {
    let no_token = Config::parse("").unwrap_err();
    assert_eq!(no_token.key(), Some("server.admin_token"));
    let missing = Config::parse("[server]\nadmin_token = \"env:SPILLWAY_TEST_SURELY_UNSET\"").unwrap_err();
    assert_eq!(missing.key(), Some("server.admin_token"));
    assert!(missing.to_string().contains("SPILLWAY_TEST_SURELY_UNSET is not set"));
    // PATH is set in every test environment; the secret's value never shows in the effective settings.
    let config = Config::parse("[server]\nadmin_token = \"env:PATH\"").expect("valid");
    let shown = config.to_effective_toml();
    assert!(shown.contains("admin_token = \"env:PATH\""), "{shown}");
    assert!(!shown.contains(&std::env::var("PATH").unwrap_or_default()));
}

#[test]
fn literal_secrets_are_redacted() {
    let shown = Config::parse(BASE).expect("valid").to_effective_toml();
    assert!(shown.contains("<redacted>") && !shown.contains("t0ken"), "{shown}");
}

#[test]
fn a_room_with_a_schedule_parses() {
    let config = Config::parse(&format!(
        "{BASE}\n{KEY}[rooms.registration]\nnew_users_per_minute = 3000\ntotal_active_users = 2000\n\
         opens_at = \"2027-02-15T09:00:00+09:00\"\nprequeue_from = \"2027-02-15T08:30:00+09:00\"\n\
         [[routes]]\nupstream = \"shop\"\npolicies = [\"room:registration\"]"
    ))
    .expect("valid");
    let room = &config.rooms["registration"];
    assert_eq!(room.opens_at.as_ref().map(|t| t.unix()), Some(1_802_649_600));
    assert_eq!(room.queue_grace.get().as_secs(), 60);
}

#[test]
fn syntax_errors_give_a_line() {
    let e = Config::parse("[server]\nadmin_token = \"x\"\nlisten = \n").unwrap_err();
    assert!(matches!(e, ConfigError::Invalid(_)));
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn effective_settings_parse_back() {
    let config =
        Config::parse(&format!("{BASE}\n[[routes]]\nhost = \"*.example.com\"\nupstream = \"shop\"")).expect("valid");
    let shown = config.to_effective_toml();
    assert!(shown.contains("name = \"route0\""), "{shown}");
    assert!(shown.contains("connect_timeout = \"2s\""), "{shown}");
    // Redacted secrets are not round-trippable by design; everything else is.
    let again = Config::parse(&shown.replace("<redacted>", "t0ken")).expect("effective settings are a valid config");
    assert_eq!(again.to_effective_toml(), shown);
}

#[test]
fn a_multi_band_limit_parses() {
    let config = Config::parse(&format!(
        "{BASE}\n[limits.api]\nkey = [\"header:X-API-Key\", \"route\"]\naction = \"throttle\"\n\
         [[limits.api.bands]]\nrate = \"10/s\"\nburst = 20\n\
         [[limits.api.bands]]\nname = \"daily\"\nalgorithm = \"fixed_window\"\nrate = \"1000/d\"\n\
         [[routes]]\nupstream = \"shop\"\npolicies = [\"limit:api\"]"
    ))
    .expect("valid");
    let api = &config.limits["api"];
    assert_eq!(api.effective_bands().len(), 2);
    assert_eq!(api.key.0, [KeyPart::Header("x-api-key".into()), KeyPart::Route]);
}

#[test]
fn inventories_and_a_reservations_route_parse() {
    let config = Config::parse(&format!(
        "{BASE}\n[inventories.show]\nunits = [\"A-1..20\", \"B-01..10\"]\nhold = \"5m\"\nwaitlist = true\n\
         [inventories.show.attributes]\n\"A-1..20\" = {{ section = \"floor\" }}\n\
         [[routes]]\npath = \"/api\"\ntarget = \"reservations\"\n"
    ))
    .expect("valid");
    let show = &config.inventories["show"];
    let units = show.unit_names().unwrap();
    assert_eq!((units.len(), units[20].as_str(), units[29].as_str()), (30, "B-01", "B-10"));
    assert_eq!(show.unit_attributes().unwrap()["A-7"]["section"], "floor");
    assert_eq!(config.reservations.ledger.to_str(), Some("spillway-ledger.db"));
}

#[test]
fn a_shield_window_is_calls_or_a_duration() {
    let config = Config::parse(&format!(
        "{BASE}\n[shields.a]\nwindow = \"50 calls\"\n[shields.b]\nwindow = \"2m\"\n[caches.c]\nttl = \"30s\"\n"
    ))
    .expect("valid");
    assert_eq!(config.shields["a"].parsed_window(), Ok(spillway_config::ShieldWindow::Calls(50)));
    assert_eq!(config.shields["b"].parsed_window(), Ok(spillway_config::ShieldWindow::Seconds(120)));
    assert_eq!(config.caches["c"].max_memory.get(), 64 * 1024 * 1024);
}
