//! Every configuration error names the key and the reason.
#![allow(clippy::unwrap_used)]

use spillway_config::{Config, ConfigError, KeyPart};

const BASE: &str = r#"
[server]
admin_token = "t0ken"

[upstreams.shop]
addresses = ["127.0.0.1:3000"]
"#;

fn err(extra: &str) -> String {
    match Config::parse(&format!("{BASE}\n{extra}")) {
        Ok(_) => panic!("expected an error for:\n{extra}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(extra: &str, key: &str, reason: &str) {
    let msg = err(extra);
    assert!(msg.starts_with(&format!("{key}: ")), "{msg:?} should start with key {key:?}");
    assert!(msg.contains(reason), "{msg:?} should contain {reason:?}");
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
    assert_eq!(err(extra), r#"routes[2].upstream: no upstream named "shopp"; did you mean "shop"?"#);
}

#[test]
fn unknown_keys_are_named() {
    assert_err("[log]\nformat = \"text\"\nlevle = \"debug\"", "log.levle", "unknown key");
    assert_err("[[routes]]\nupstream = \"shop\"\nupsteam = \"x\"", "routes[0].upsteam", "unknown key");
    assert_err("[rooms.sale]\nrate = 1", "rooms.sale.rate", "unknown key");
}

#[test]
fn durations_need_units() {
    assert_err(
        "[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = 30",
        "upstreams.api.request_timeout",
        "ambiguous",
    );
    assert_err(
        "[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = \"30 parsecs\"",
        "upstreams.api.request_timeout",
        "invalid duration",
    );
    let config = Config::parse(&format!("{BASE}\n[upstreams.api]\naddresses = [\"a:1\"]\nrequest_timeout = \"250ms\""))
        .expect("valid");
    assert_eq!(config.upstreams["api"].request_timeout.get().as_millis(), 250);
}

#[test]
fn wrong_types_name_the_key_and_line() {
    let msg = err("[[routes]]\npath = 7\nupstream = \"shop\"");
    assert!(msg.starts_with("routes[0].path: "), "{msg}");
    assert!(msg.contains("line 9"), "{msg}");
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
fn bad_values() {
    assert_err("[[routes]]\npath = \"api\"\nupstream = \"shop\"", "routes[0].path", "must start with '/'");
    assert_err("[[routes]]\nhost = \"shop.example.com:80\"\nupstream = \"shop\"", "routes[0].host", "not a host name");
    assert_err("[upstreams.api]\naddresses = []", "upstreams.api.addresses", "at least one");
    assert_err("[upstreams.api]\naddresses = [\"http://a:1\"]", "upstreams.api.addresses[0]", "without a scheme");
    assert_err("[upstreams.api]\naddresses = [\"a:0\"]", "upstreams.api.addresses[0]", "port");
    assert_err("[[keys]]\nid = \"k1\"\nsecret = \"short\"", "keys[0].secret", "at least 32 bytes");
    assert_err(
        "[[routes]]\npath = \"/api/\"\nupstream = \"shop\"\n[[routes]]\npath = \"/api\"\nupstream = \"shop\"",
        "routes[1]",
        "same host and path as routes[0]",
    );
    assert_err("[[routes]]\nupstream = \"shop\"\npolicies = [\"room\"]", "routes[0].policies[0]", "kind:name");
    assert_err(
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"teleport:x\"]",
        "routes[0].policies[0]",
        "unknown policy kind",
    );
    assert_err("[[routes]]\nupstream = \"shop\"\npolicies = [\"room:sale\"]", "routes[0].policies[0]", "no rooms.sale");
    assert_err(
        "[[routes]]\nupstream = \"shop\"\n[[routes]]\nname = \"route0\"\npath = \"/x\"\nupstream = \"shop\"",
        "routes[1].name",
        "duplicate route name",
    );
}

const KEY: &str = "[[keys]]\nid = \"k1\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";

#[test]
fn room_errors_name_the_key() {
    assert_err("[rooms.sale]\nnew_users_per_minute = 60", "keys", "needs at least one signing key");
    let room = |body: &str| format!("{KEY}[rooms.sale]\n{body}");
    assert_err(&room("new_users_per_minute = 0"), "rooms.sale.new_users_per_minute", "at least 1");
    assert_err(&room("new_users_per_minute = 60\nqueue_grace = \"2s\""), "rooms.sale.queue_grace", "at least 5s");
    assert_err(&room("new_users_per_minute = 60\nqueueing = \"lifo\""), "rooms.sale.queueing", "unknown variant");
    assert_err(&room("new_users_per_minute = 60\nopens_at = \"tomorrow\""), "rooms.sale.opens_at", "RFC 3339");
    assert_err(
        &room("new_users_per_minute = 60\nopens_at = 2026-12-01T10:00:00+09:00"),
        "rooms.sale.opens_at",
        "in quotes",
    );
    assert_err(
        &room("new_users_per_minute = 60\nprequeue_from = \"2026-12-01T09:00:00+09:00\""),
        "rooms.sale.prequeue_from",
        "needs opens_at",
    );
    assert_err(
        &room(
            "new_users_per_minute = 60\nopens_at = \"2026-12-01T09:00:00+09:00\"\n\
             closes_at = \"2026-12-01T08:00:00+09:00\"",
        ),
        "rooms.sale.closes_at",
        "after opens_at",
    );
    assert_err(&room("new_users_per_minute = 60\nsurprise = 1"), "rooms.sale.surprise", "unknown key");
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
fn limit_errors_name_the_key() {
    let limit = |body: &str| format!("[limits.api]\n{body}");
    assert_err(&limit("key = \"ip\""), "limits.api.rate", "required");
    assert_err(&limit("rate = \"ten/s\""), "limits.api.rate", "count/period");
    assert_err(&limit("rate = \"10/s\"\nkey = \"teapot\""), "limits.api.key", "invalid key");
    assert_err(&limit("rate = \"10/s\"\nburst = 0"), "limits.api.burst", "at least 1");
    assert_err(&limit("rate = \"10/s\"\nrefill = \"interval\""), "limits.api.refill", "token_bucket");
    assert_err(&limit("rate = \"10/s\"\nkey = \"pass:sale\""), "limits.api.key", "no rooms.sale");
    assert_err(&limit("rate = \"10/s\"\nallow = [\"10.0.0.0/33\"]"), "limits.api.allow[0]", "invalid network");
    assert_err(&limit("rate = \"10/s\"\n[[limits.api.bands]]\nrate = \"1/s\""), "limits.api.bands", "not both");
    assert_err(
        "[[limits.api.bands]]\nrate = \"100000/s\"\nalgorithm = \"sliding_log\"",
        "limits.api.bands[0].rate",
        "at most 10000",
    );
    assert_err(
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"limit:nope\"]",
        "routes[0].policies[0]",
        "no limits.nope",
    );
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
fn inventory_errors_name_the_key() {
    assert_err("[inventories.drop]\nper_user_limit = 1\n", "inventories.drop.stock", "required");
    assert_err("[inventories.drop]\nstock = 5\nunits = [\"A-1\"]\n", "inventories.drop.units", "not both");
    assert_err(
        "[inventories.show]\nunits = [\"A-1..3\", \"A-2\"]\n",
        "inventories.show.units",
        "\"A-2\" is listed twice",
    );
    assert_err("[inventories.show]\nunits = [\"A-5..1\"]\n", "inventories.show.units", "a range is written");
    assert_err(
        "[inventories.show]\nunits = [\"A-1..3\"]\n[inventories.show.attributes]\n\"B-1\" = { price = \"1\" }\n",
        "inventories.show.attributes",
        "no unit \"B-1\"",
    );
    assert_err("[inventories.drop]\nstock = 5\nper_user_limit = 0\n", "inventories.drop.per_user_limit", "at least 1");
    assert_err("[inventories.drop]\nstock = 5\nhold = \"300\"\n", "inventories.drop.hold", "time unit needed");
    assert_err(
        "[inventories.drop]\nstock = 5\nopens_at = \"2026-12-04T10:00:00+09:00\"\ncloses_at = \"2026-12-04T09:00:00+09:00\"\n",
        "inventories.drop.closes_at",
        "after opens_at",
    );
    assert_err("[inventories.\"a b\"]\nstock = 5\n", "inventories.a b", "letters, digits");
    assert_err("[[routes]]\npath = \"/r\"\n", "routes[0].upstream", "target = \"reservations\"");
    assert_err(
        "[[routes]]\npath = \"/r\"\nupstream = \"shop\"\ntarget = \"reservations\"\n",
        "routes[0].target",
        "not both",
    );
    assert_err("[[routes]]\npath = \"/r\"\ntarget = \"coupons\"\n", "routes[0].target", "unknown variant");
    assert_err("[reservations]\nuser_header = \"x user\"\n", "reservations.user_header", "header name");
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
fn shield_and_cache_errors_name_the_key() {
    assert_err("[shields.api]\nfailure_on = [\"timeouts\"]\n", "shields.api.failure_on[0]", "one of");
    assert_err("[shields.api]\nwindow = \"100\"\n", "shields.api.window", "100 calls");
    assert_err("[shields.api]\nadaptive = \"gradient\"\n", "shields.api.adaptive", "needs max_concurrency");
    assert_err(
        "[shields.api]\nmax_concurrency = 10\nmin_concurrency = 20\nadaptive = \"aimd\"\n",
        "shields.api.min_concurrency",
        "from 1 to",
    );
    assert_err("[shields.api]\nfailure_rate = 1.5\n", "shields.api.failure_rate", "a share");
    assert_err("[shields.api]\nretries = 11\n", "shields.api.retries", "at most 10");
    assert_err(
        "[shields.api]\nfallback = { status = 99, body = \"x\" }\n",
        "shields.api.fallback.status",
        "200 to 599",
    );
    assert_err("[caches.c]\nttl_jitter = 0.9\n", "caches.c.ttl_jitter", "0 to 0.5");
    assert_err(
        "[caches.c]\nmax_memory = \"1KiB\"\nmax_object = \"2KiB\"\n",
        "caches.c.max_object",
        "at most max_memory",
    );
    assert_err("[caches.c]\nkey_headers = [\"a b\"]\n", "caches.c.key_headers[0]", "header name");
    assert_err(
        "[[routes]]\nupstream = \"shop\"\npolicies = [\"cache:nope\"]\n",
        "routes[0].policies[0]",
        "no caches.nope",
    );
    assert_err("[[routes]]\nupstream = \"shop\"\npriority = \"urgent\"\n", "routes[0].priority", "unknown variant");
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
