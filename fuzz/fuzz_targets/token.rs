//! Tokens and the room cookies that carry them.
//!
//! - `Keyring::verify` never panics on any string, and accepts one only if it is exactly what the keyring
//!   would sign for the claims it returns (one key, canonical base64, so there is one encoding per token).
//! - Claims derived from the input sign and verify back to themselves, and every single-byte edit of the
//!   signed token (each byte replaced, removed, or a byte inserted) is refused.
//! - The public cookie reader (`room::cookie`) never panics, finds a token placed among arbitrary other
//!   cookies, and after `room::strip_own` no room cookie is left while every other cookie reads the same.
#![no_main]

use arbitrary::Arbitrary;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use spillway_core::token::{Claims, Expect, Keyring, Kind, MAX_NAME_LEN};
use spillway_gateway::room::{cookie, strip_own};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Presented as a token as it is.
    garbage: &'a str,
    ticket: bool,
    room: &'a str,
    generation: u32,
    seq: u64,
    issued: u32,
    expires: u32,
    binding: u64,
    now: u32,
    enforce_binding: Option<u64>,
    /// Cookie header values (each may hold several `name=value` pairs).
    cookie_headers: Vec<&'a [u8]>,
    /// Where among them the room's cookie goes, and whether quoted.
    place: u8,
    quoted: bool,
    /// An edit of the signed token: position and byte.
    edit_at: u8,
    edit_byte: u8,
}

fn kind(ticket: bool) -> Kind {
    if ticket { Kind::Ticket } else { Kind::Pass }
}

fuzz_target!(|input: Input<'_>| {
    let ring = Keyring::new([("k1", SECRET)]).expect("keyring");
    let rotated = Keyring::new([("k2", OTHER_SECRET), ("k1", SECRET)]).expect("keyring");
    let forger = Keyring::new([("k1", OTHER_SECRET)]).expect("keyring");

    // Arbitrary strings.
    for kind in [Kind::Ticket, Kind::Pass] {
        let expect = Expect { kind, room: input.room, now: input.now, binding: input.enforce_binding };
        if let Ok(claims) = ring.verify(input.garbage, &expect) {
            assert_eq!(ring.sign(&claims), input.garbage, "a token verified that the key never signed as such");
        }
        let _ = rotated.verify(input.garbage, &expect);
        let _ = forger.verify(input.garbage, &expect);
    }

    // Claims from the input. Config validation keeps room names within what a token carries.
    let mut room_len = input.room.len().min(MAX_NAME_LEN);
    while !input.room.is_char_boundary(room_len) {
        room_len -= 1;
    }
    let room = &input.room[..room_len];
    let claims = Claims {
        kind: kind(input.ticket),
        room: room.to_string(),
        generation: input.generation,
        seq: input.seq,
        issued: input.issued,
        expires: input.expires.max(1),
        binding: input.binding,
    };
    let expect = Expect { kind: claims.kind, room, now: claims.expires - 1, binding: Some(claims.binding) };
    let token = ring.sign(&claims);
    assert_eq!(ring.verify(&token, &expect), Ok(claims.clone()), "a signed token does not verify");
    assert_eq!(rotated.verify(&token, &expect), Ok(claims.clone()), "an old key no longer verifies after rotation");
    assert!(forger.verify(&token, &expect).is_err(), "another secret verified the token");
    assert!(ring.verify(&token, &Expect { kind: kind(!input.ticket), ..expect }).is_err(), "wrong kind accepted");
    assert!(ring.verify(&token, &Expect { now: claims.expires, ..expect }).is_err(), "expired token accepted");

    // Every single-byte edit of the token is refused.
    let bytes = token.as_bytes();
    let at = usize::from(input.edit_at) % (bytes.len() + 1);
    let mut edits: Vec<Vec<u8>> = Vec::new();
    if at < bytes.len() {
        let mut replaced = bytes.to_vec();
        replaced[at] = input.edit_byte;
        if replaced != bytes {
            edits.push(replaced);
        }
        let mut removed = bytes.to_vec();
        removed.remove(at);
        edits.push(removed);
    }
    let mut inserted = bytes.to_vec();
    inserted.insert(at, input.edit_byte);
    edits.push(inserted);
    for edit in edits {
        if let Ok(edited) = std::str::from_utf8(&edit) {
            let verdict = ring.verify(edited, &expect);
            assert!(verdict.is_err(), "edited token {edited:?} of {token:?} verified: {verdict:?}");
        }
    }

    // Cookies.
    let name = if input.ticket { format!("spw_ticket_{room}") } else { format!("spw_pass_{room}") };
    let mut headers = HeaderMap::new();
    let values: Vec<HeaderValue> =
        input.cookie_headers.iter().filter_map(|v| HeaderValue::from_bytes(v).ok()).take(8).collect();
    for v in &values {
        headers.append(COOKIE, v.clone());
    }
    for probe in [name.as_str(), "spw_pass_", "spw_ticket_x", "a", ""] {
        let _ = cookie(&headers, probe);
    }
    let before: Vec<Option<String>> = probes(&values).iter().map(|p| cookie(&headers, p).map(str::to_string)).collect();
    let mut stripped = headers.clone();
    strip_own(&mut stripped);
    for (probe, was) in probes(&values).iter().zip(&before) {
        let now = cookie(&stripped, probe);
        if probe.starts_with("spw_ticket_") || probe.starts_with("spw_pass_") {
            assert_eq!(now, None, "room cookie {probe:?} survived strip_own");
        } else {
            assert_eq!(now, was.as_deref(), "cookie {probe:?} changed by strip_own");
        }
    }

    // The room's cookie placed among the others (where its name is a plain cookie name and no other pair
    // already has it, which would be found first) reads back as the token, and verifies.
    let plain_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && !b"\";=,\\".contains(&b));
    if plain_name && cookie(&headers, &name).is_none() {
        let value = if input.quoted { format!("\"{token}\"") } else { token.clone() };
        let pair = format!("{name}={value}");
        let mut placed = HeaderMap::new();
        let at = usize::from(input.place) % (values.len() + 1);
        for (i, v) in values.iter().enumerate() {
            if i == at {
                placed.append(COOKIE, HeaderValue::from_str(&pair).expect("header"));
            }
            placed.append(COOKIE, v.clone());
        }
        if at == values.len() {
            placed.append(COOKIE, HeaderValue::from_str(&pair).expect("header"));
        }
        let got = cookie(&placed, &name);
        assert_eq!(got, Some(token.as_str()), "cookie {name:?} does not read back as the token");
        assert_eq!(ring.verify(got.unwrap_or_default(), &expect), Ok(claims.clone()));
        let mut stripped = placed.clone();
        strip_own(&mut stripped);
        assert_eq!(cookie(&stripped, &name), None, "the room cookie survived strip_own");
    }
});

/// Every cookie name in the headers, and a few fixed ones.
fn probes(values: &[HeaderValue]) -> Vec<String> {
    let mut names: Vec<String> = values
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('=').map(|(k, _)| k.to_string()))
        .take(32)
        .collect();
    names.extend(["spw_pass_sale".to_string(), "spw_ticket_sale".to_string(), "other".to_string()]);
    names
}

