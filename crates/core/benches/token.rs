//! Pass verification, the check every admitted request pays. Target: under 2 µs.
//!
//!     cargo bench -p spillway-core --bench token

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use spillway_core::token::{Claims, Expect, Keyring, Kind};

fn tokens(c: &mut Criterion) {
    let keys = Keyring::new([("2026-11", &b"0123456789abcdef0123456789abcdef"[..]), ("2026-10", &[7u8; 32][..])])
        .expect("keys");
    let claims = Claims {
        kind: Kind::Pass,
        room: "sale".into(),
        generation: 1,
        seq: 123_456,
        issued: 1_800_000_000,
        expires: 1_800_000_600,
        binding: spillway_core::token::binding(&[10, 0, 0, 1]),
    };
    let token = keys.sign(&claims);
    let expect = Expect { kind: Kind::Pass, room: "sale", now: 1_800_000_100, binding: Some(claims.binding) };
    c.bench_function("pass_verify", |b| b.iter(|| keys.verify(black_box(&token), black_box(&expect))));
    c.bench_function("pass_sign", |b| b.iter(|| keys.sign(black_box(&claims))));
}

criterion_group!(benches, tokens);
criterion_main!(benches);
