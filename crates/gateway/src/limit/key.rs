//! The digest a request is counted under: the limit's key parts read from the request and hashed together,
//! without building a string. Raw keys (API keys, addresses) are never stored.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;
use spillway_config::KeyPart;

use crate::room::RoomHandle;

/// A key part ready to read from a request.
#[derive(Debug, Clone)]
pub enum Part {
    Ip,
    Header(http::HeaderName),
    Cookie(String),
    Pass(Arc<RoomHandle>),
    Route,
    Global,
}

impl Part {
    pub fn new(part: &KeyPart, room: impl Fn(&str) -> Option<Arc<RoomHandle>>) -> Result<Self, String> {
        Ok(match part {
            KeyPart::Ip => Self::Ip,
            KeyPart::Header(h) => {
                Self::Header(http::HeaderName::from_bytes(h.as_bytes()).map_err(|e| format!("header {h:?}: {e}"))?)
            }
            KeyPart::Cookie(c) => Self::Cookie(c.clone()),
            KeyPart::Pass(r) => Self::Pass(room(r).ok_or_else(|| format!("pass:{r}: no rooms.{r}"))?),
            KeyPart::Route => Self::Route,
            KeyPart::Global => Self::Global,
        })
    }
}

/// What a key is read from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub headers: &'a HeaderMap,
    pub client_ip: IpAddr,
    pub peer_ip: IpAddr,
    pub route: &'a str,
}

/// Hashes the parts in order, each tagged, so that ("ab", "c") and ("a", "bc") differ. A part the request
/// lacks (no `X-API-Key`) hashes as absent: all such requests share one budget.
pub fn digest(parts: &[Part], source: &Source<'_>, hasher: &impl BuildHasher) -> u64 {
    let mut h = hasher.build_hasher();
    for part in parts {
        match part {
            Part::Ip => {
                h.write_u8(1);
                match source.client_ip {
                    IpAddr::V4(v4) => h.write(&v4.octets()),
                    IpAddr::V6(v6) => h.write(&v6.octets()),
                }
            }
            Part::Header(name) => {
                h.write_u8(2);
                for value in source.headers.get_all(name) {
                    h.write(value.as_bytes());
                    h.write_u8(0xff);
                }
            }
            Part::Cookie(name) => {
                h.write_u8(3);
                if let Some(v) = crate::room::cookie(source.headers, name) {
                    h.write(v.as_bytes());
                }
            }
            Part::Pass(room) => {
                h.write_u8(4);
                if let Some(session) = room.session_of(source.headers, source.peer_ip) {
                    h.write_u64(session);
                }
            }
            Part::Route => {
                h.write_u8(5);
                h.write(source.route.as_bytes());
            }
            Part::Global => h.write_u8(6),
        }
        h.write_u8(0xfe);
    }
    h.finish()
}
