//! Queue tickets and admission passes: compact HMAC-SHA256 tokens that any node can verify alone.
//!
//! A token is `base64url(payload || mac)`, where the payload is a fixed little binary layout and the mac is the
//! first 16 bytes of HMAC-SHA256 over the payload. 128 bits of tag is beyond online forgery; keeping it short
//! keeps the cookie small, and the cookie rides on every request through the gateway.
//!
//! ```text
//! version u8 | kind u8 | key id len u8 | key id | room len u8 | room | generation u32 | seq u64
//!            | issued u32 | expires u32 | binding u64 | mac [16]
//! ```
//!
//! Times are Unix seconds. The key id travels in the token so that after a rotation every listed key still
//! verifies what it signed, while only the first key signs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
/// Longest key id or room name a token can carry; config validation keeps names below this.
pub const MAX_NAME_LEN: usize = 64;
/// 1 + 1 + 1 + 64 + 1 + 64 + 4 + 8 + 4 + 4 + 8 + 16 bytes, base64url-encoded, rounded up.
const MAX_TOKEN_CHARS: usize = 240;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A place in a room's queue.
    Ticket = 1,
    /// Admission: requests with it go through to the origin.
    Pass = 2,
}

/// The signed content of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kind: Kind,
    pub room: String,
    /// Bumped when a room is reset, so tokens from before the reset stop counting.
    pub generation: u32,
    /// Arrival number for a ticket, session number for a pass.
    pub seq: u64,
    pub issued: u32,
    pub expires: u32,
    /// [`binding`] of the client address the token was issued to, or 0 for none.
    pub binding: u64,
}

/// What the verifier expects of a token.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub kind: Kind,
    pub room: &'a str,
    /// Unix seconds.
    pub now: u32,
    /// The presenting client's [`binding`] where binding is enforced, checked when the token carries one.
    /// `None`: not enforced, so turning binding off never locks out tokens issued while it was on.
    pub binding: Option<u64>,
}

/// Why a presented token does not count. A refused token is treated as absent, never as an error shown to the
/// client; the reason goes to metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Refusal {
    #[error("not a token")]
    Malformed,
    #[error("signed by a key this node does not have")]
    UnknownKey,
    #[error("signature does not match")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("issued for another room")]
    OtherRoom,
    #[error("a ticket where a pass belongs, or the reverse")]
    WrongKind,
    #[error("issued to another client address")]
    Binding,
    #[error("issued before the room was reset")]
    Stale,
    #[error("already used or no longer in the queue")]
    Replayed,
    #[error("its session was ended")]
    Ended,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Self::Malformed,
        Self::UnknownKey,
        Self::BadSignature,
        Self::Expired,
        Self::OtherRoom,
        Self::WrongKind,
        Self::Binding,
        Self::Stale,
        Self::Replayed,
        Self::Ended,
    ];

    /// Stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::OtherRoom => "other_room",
            Self::WrongKind => "wrong_kind",
            Self::Binding => "binding",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
            Self::Ended => "ended",
        }
    }
}

/// A configuration problem with the keys handed to [`Keyring::new`].
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no signing keys")]
    Empty,
    #[error("key id {0:?} must be 1 to {MAX_NAME_LEN} bytes")]
    BadId(String),
}

/// The signing keys of a deployment. The first signs; all verify.
#[derive(Clone)]
pub struct Keyring {
    /// Each key's HMAC already keyed, so signing and verifying clone a ready state instead of re-hashing the
    /// key pads every time.
    keys: Vec<(String, HmacSha256)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>()).finish()
    }
}

impl Keyring {
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Self, KeyError> {
        let mut ring = Vec::new();
        for (id, secret) in keys {
            if id.is_empty() || id.len() > MAX_NAME_LEN {
                return Err(KeyError::BadId(id.to_string()));
            }
            // HMAC accepts keys of any length; new_from_slice cannot fail for it.
            let mac = HmacSha256::new_from_slice(secret).map_err(|_| KeyError::BadId(id.to_string()))?;
            ring.push((id.to_string(), mac));
        }
        if ring.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys: ring })
    }

    /// A 64-bit value derived from the signing key for `purpose`: the same on every node that shares the
    /// keys, and unknown to anyone who does not have them (a seed for digests an attacker must not steer).
    pub fn derive(&self, purpose: &str) -> u64 {
        let (_, mac) = &self.keys[0];
        let tag = mac.clone().chain_update(b"spillway-derive\0").chain_update(purpose.as_bytes()).finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.into_bytes()[..8]);
        u64::from_be_bytes(first)
    }

    /// Signs with the first key.
    pub fn sign(&self, claims: &Claims) -> String {
        let (id, mac) = &self.keys[0];
        let mut buf = Vec::with_capacity(64 + id.len() + claims.room.len());
        buf.push(VERSION);
        buf.push(claims.kind as u8);
        push_name(&mut buf, id);
        push_name(&mut buf, &claims.room);
        buf.extend_from_slice(&claims.generation.to_be_bytes());
        buf.extend_from_slice(&claims.seq.to_be_bytes());
        buf.extend_from_slice(&claims.issued.to_be_bytes());
        buf.extend_from_slice(&claims.expires.to_be_bytes());
        buf.extend_from_slice(&claims.binding.to_be_bytes());
        let mut mac = mac.clone();
        mac.update(&buf);
        let tag = mac.finalize().into_bytes();
        buf.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Checks the signature first, so a forged token is reported as forged rather than as, say, expired.
    pub fn verify(&self, token: &str, expect: &Expect<'_>) -> Result<Claims, Refusal> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(Refusal::Malformed);
        }
        let mut raw = [0u8; MAX_TOKEN_CHARS];
        let len = URL_SAFE_NO_PAD.decode_slice(token, &mut raw).map_err(|_| Refusal::Malformed)?;
        let raw = &raw[..len];
        let payload_len = len.checked_sub(MAC_LEN).ok_or(Refusal::Malformed)?;
        let (payload, tag) = raw.split_at(payload_len);

        let mut r = Reader(payload);
        if r.u8()? != VERSION {
            return Err(Refusal::Malformed);
        }
        let kind = match r.u8()? {
            1 => Kind::Ticket,
            2 => Kind::Pass,
            _ => return Err(Refusal::Malformed),
        };
        let key_id = r.name()?;
        let room = r.name()?;
        let generation = u32::from_be_bytes(r.array()?);
        let seq = u64::from_be_bytes(r.array()?);
        let issued = u32::from_be_bytes(r.array()?);
        let expires = u32::from_be_bytes(r.array()?);
        let binding = u64::from_be_bytes(r.array()?);
        if !r.0.is_empty() {
            return Err(Refusal::Malformed);
        }

        let (_, mac) = self.keys.iter().find(|(id, _)| id.as_bytes() == key_id).ok_or(Refusal::UnknownKey)?;
        let mut mac = mac.clone();
        mac.update(payload);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(tag).map_err(|_| Refusal::BadSignature)?;

        if kind != expect.kind {
            return Err(Refusal::WrongKind);
        }
        if room != expect.room.as_bytes() {
            return Err(Refusal::OtherRoom);
        }
        if expires <= expect.now {
            return Err(Refusal::Expired);
        }
        if binding != 0 && expect.binding.is_some_and(|b| b != binding) {
            return Err(Refusal::Binding);
        }
        let room = String::from_utf8(room.to_vec()).map_err(|_| Refusal::Malformed)?;
        Ok(Claims { kind, room, generation, seq, issued, expires, binding })
    }
}

/// A stable 64-bit digest of a client address for binding tokens to it. The address itself never goes in a
/// token, which the client can read.
pub fn binding(address: &[u8]) -> u64 {
    let digest = Sha256::new().chain_update(b"spillway-binding\0").chain_update(address).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 0 means "unbound"; the one digest that maps there is nudged.
    u64::from_be_bytes(first).max(1)
}

fn push_name(buf: &mut Vec<u8>, name: &str) {
    let bytes = &name.as_bytes()[..name.len().min(MAX_NAME_LEN)];
    buf.push(bytes.len() as u8);
    buf.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if self.0.len() < n {
            return Err(Refusal::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Refusal> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Refusal> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn name(&mut self) -> Result<&'a [u8], Refusal> {
        let len = self.u8()? as usize;
        if len > MAX_NAME_LEN {
            return Err(Refusal::Malformed);
        }
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const K1: &[u8] = b"0123456789abcdef0123456789abcdef";
    const K2: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn claims() -> Claims {
        Claims {
            kind: Kind::Pass,
            room: "sale".into(),
            generation: 3,
            seq: 42,
            issued: 1_000,
            expires: 2_000,
            binding: 0,
        }
    }

    fn expect(now: u32) -> Expect<'static> {
        Expect { kind: Kind::Pass, room: "sale", now, binding: Some(7) }
    }

    #[test]
    fn round_trip_and_compact() {
        let ring = Keyring::new([("k1", K1)]).unwrap();
        let token = ring.sign(&claims());
        assert!(token.len() < 100, "{} chars", token.len());
        assert_eq!(ring.verify(&token, &expect(1_500)), Ok(claims()));
    }

    #[test]
    fn every_refusal_reason() {
        let ring = Keyring::new([("k1", K1)]).unwrap();
        let token = ring.sign(&claims());
        assert_eq!(ring.verify(&token, &expect(2_000)), Err(Refusal::Expired));
        assert_eq!(ring.verify(&token, &Expect { room: "other", ..expect(1) }), Err(Refusal::OtherRoom));
        assert_eq!(ring.verify(&token, &Expect { kind: Kind::Ticket, ..expect(1) }), Err(Refusal::WrongKind));
        assert_eq!(ring.verify("not a token!", &expect(1)), Err(Refusal::Malformed));
        assert_eq!(ring.verify("", &expect(1)), Err(Refusal::Malformed));
        let bound = ring.sign(&Claims { binding: 9, ..claims() });
        assert_eq!(ring.verify(&bound, &expect(1)), Err(Refusal::Binding));
        assert!(ring.verify(&bound, &Expect { binding: Some(9), ..expect(1) }).is_ok());
        assert!(ring.verify(&bound, &Expect { binding: None, ..expect(1) }).is_ok(), "binding not enforced");
        let stranger = Keyring::new([("k9", K1)]).unwrap();
        assert_eq!(stranger.verify(&token, &expect(1)), Err(Refusal::UnknownKey));
        let forger = Keyring::new([("k1", K2)]).unwrap();
        assert_eq!(forger.verify(&token, &expect(1)), Err(Refusal::BadSignature));
    }

    #[test]
    fn rotation_first_signs_all_verify() {
        let old = Keyring::new([("old", K1)]).unwrap();
        let rotated = Keyring::new([("new", K2), ("old", K1)]).unwrap();
        let before = old.sign(&claims());
        assert!(rotated.verify(&before, &expect(1)).is_ok());
        let after = rotated.sign(&claims());
        assert_eq!(old.verify(&after, &expect(1)), Err(Refusal::UnknownKey));
        assert!(rotated.verify(&after, &expect(1)).is_ok());
    }

    #[test]
    fn binding_is_stable_and_never_zero() {
        assert_eq!(binding(&[127, 0, 0, 1]), binding(&[127, 0, 0, 1]));
        assert_ne!(binding(&[127, 0, 0, 1]), binding(&[127, 0, 0, 2]));
        assert_ne!(binding(&[]), 0);
    }

    proptest! {
        /// Any change to any byte of a token is caught; nothing panics on arbitrary input.
        #[test]
        fn tampering_is_always_refused(index in 0usize..200, flip in 1u8..=255) {
            let ring = Keyring::new([("k1", K1)]).unwrap();
            let token = ring.sign(&claims());
            let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
            let i = index % raw.len();
            raw[i] ^= flip;
            let tampered = URL_SAFE_NO_PAD.encode(raw);
            prop_assert!(ring.verify(&tampered, &expect(1_500)).is_err());
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,300}") {
            let ring = Keyring::new([("k1", K1)]).unwrap();
            prop_assert!(ring.verify(&s, &expect(1)).is_err());
        }
    }
}

#[cfg(test)]
mod derive_tests {
    use super::*;

    #[test]
    fn a_derived_seed_is_shared_by_the_same_keys_and_by_nobody_else() {
        let a = Keyring::new([("k1", b"0123456789abcdef0123456789abcdef".as_slice())]).expect("keys");
        let b = Keyring::new([("k1", b"0123456789abcdef0123456789abcdef".as_slice())]).expect("keys");
        let other = Keyring::new([("k1", b"fedcba9876543210fedcba9876543210".as_slice())]).expect("keys");
        assert_eq!(a.derive("limit:api"), b.derive("limit:api"), "two nodes with the same keys agree");
        assert_ne!(a.derive("limit:api"), a.derive("limit:login"), "each purpose has its own seed");
        assert_ne!(a.derive("limit:api"), other.derive("limit:api"), "other keys, another seed");
    }
}
