//! Arbitrary text through `Config::parse`: it never panics, and a config it accepts prints effective settings
//! that parse again to the same effective settings.
//!
//! One thing cannot survive the round: a literal signing-key secret, which the effective settings redact to
//! `"<redacted>"`, shorter than the 32 bytes a key needs, so the effective settings of any config with a
//! literal `[[keys]] secret` do not parse as they are (the quickstart's among them). Before parsing them again
//! this target puts a 32-byte stand-in at exactly those places, `keys[N].secret` equal to `"<redacted>"`, and
//! nowhere else; everything else must come back the same, byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spillway_config::Config;

const REDACTED: &str = "<redacted>";
const STAND_IN: &str = "fuzz-stand-in-for-a-redacted-secret";

fn unredact_keys(effective: &str) -> String {
    let mut doc: toml::Table = match toml::from_str(effective) {
        Ok(doc) => doc,
        Err(e) => panic!("effective settings are not TOML: {e}\n--- effective ---\n{effective}"),
    };
    let Some(toml::Value::Array(keys)) = doc.get_mut("keys") else { return effective.to_string() };
    for key in keys.iter_mut().filter_map(toml::Value::as_table_mut) {
        if key.get("secret").and_then(toml::Value::as_str) == Some(REDACTED) {
            key.insert("secret".into(), toml::Value::String(STAND_IN.into()));
        }
    }
    toml::to_string(&doc).expect("a TOML table prints")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = Config::parse(text) else { return };
    let effective = config.to_effective_toml();
    let reparsable = unredact_keys(&effective);
    let again = match Config::parse(&reparsable) {
        Ok(again) => again,
        Err(e) => panic!(
            "effective settings do not parse again: {e}\n--- input ---\n{text}\n--- effective ---\n{effective}"
        ),
    };
    let effective_again = again.to_effective_toml();
    assert!(
        effective == effective_again,
        "effective settings change on a second round\n--- input ---\n{text}\n--- first ---\n{effective}\n--- second ---\n{effective_again}"
    );
});
