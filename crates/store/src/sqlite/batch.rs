//! The row one committed transaction writes: every event of the batch in a compact binary form.
//!
//! One row per commit instead of one JSON row per event: an event costs tens of nanoseconds to encode instead
//! of a JSON serialization and an SQLite insert each. Each event is encoded by whoever appends it, so the
//! writer thread only puts a header in front of bytes that are ready. A batch is one row of one transaction,
//! so it is on disk whole or not at all; reading the rows in order gives back the events in the order they
//! were appended.
//!
//! Layout: a format byte, the number of events, then each event as a tag byte and its fields. Integers are
//! LEB128 varints; strings and lists are a varint length and their items. An inventory's spec is rare and
//! evolves, so it is kept as its JSON.

use spillway_core::reserve::{ClaimStatus, Event, InventorySpec};

const FORMAT: u8 = 1;

const INVENTORY_CREATED: u8 = 0;
const CLAIMED: u8 = 1;
const CONFIRMED: u8 = 2;
const CANCELLED: u8 = 3;
const EXPIRED: u8 = 4;
const PROMOTED: u8 = 5;
const COMPACTED: u8 = 6;

const STATUS_CONFIRMED: u8 = 0;
const STATUS_HELD: u8 = 1;
const STATUS_WAITLISTED: u8 = 2;
const STATUS_CANCELLED: u8 = 3;
const STATUS_EXPIRED: u8 = 4;

/// The encoding of `events` as one batch, in `out` (cleared first, so one buffer serves every commit).
#[cfg(test)]
pub fn encode<'a>(events: impl ExactSizeIterator<Item = &'a Event>, out: &mut Vec<u8>) -> Result<(), String> {
    let mut body = Vec::new();
    let count = events.len();
    for event in events {
        encode_event(event, &mut body)?;
    }
    assemble(count, &body, out);
    Ok(())
}

/// A batch of `count` events from their encodings, concatenated in order in `events`, into `out` (cleared
/// first). Events are encoded one by one as they are appended ([`encode_event`]), so the writer only adds
/// this header and copies.
pub fn assemble(count: usize, events: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(FORMAT);
    uint(out, count as u64);
    out.extend_from_slice(events);
}

/// Appends one event's encoding to `out`. On an error `out` may hold part of it: truncate to where it was.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
    match event {
        Event::InventoryCreated(spec) => {
            out.push(INVENTORY_CREATED);
            text(out, &serde_json::to_string(spec).map_err(|e| e.to_string())?);
        }
        Event::Claimed { claim, inventory, user, quantity, units, key, status, at } => {
            out.push(CLAIMED);
            uint(out, *claim);
            text(out, inventory);
            text(out, user);
            uint(out, u64::from(*quantity));
            texts(out, units);
            text(out, key);
            claim_status(out, status);
            uint(out, *at);
        }
        Event::Confirmed { claim, at } | Event::Cancelled { claim, at } | Event::Expired { claim, at } => {
            out.push(match event {
                Event::Confirmed { .. } => CONFIRMED,
                Event::Cancelled { .. } => CANCELLED,
                _ => EXPIRED,
            });
            uint(out, *claim);
            uint(out, *at);
        }
        Event::Compacted { before } => {
            out.push(COMPACTED);
            uint(out, *before);
        }
        Event::Promoted { claim, units, status, at } => {
            out.push(PROMOTED);
            uint(out, *claim);
            texts(out, units);
            claim_status(out, status);
            uint(out, *at);
        }
    }
    Ok(())
}

/// The events of one batch row, appended to `events`.
pub fn decode(bytes: &[u8], events: &mut Vec<Event>) -> Result<(), String> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!("unknown batch format {format}"));
    }
    let count = r.uint()?;
    for _ in 0..count {
        let event = match r.byte()? {
            INVENTORY_CREATED => {
                let spec: InventorySpec = serde_json::from_str(r.text()?).map_err(|e| e.to_string())?;
                Event::InventoryCreated(spec)
            }
            CLAIMED => Event::Claimed {
                claim: r.uint()?,
                inventory: r.text()?.into(),
                user: r.text()?.into(),
                quantity: u32::try_from(r.uint()?).map_err(|e| e.to_string())?,
                units: r.texts()?,
                key: r.text()?.into(),
                status: r.status()?,
                at: r.uint()?,
            },
            CONFIRMED => Event::Confirmed { claim: r.uint()?, at: r.uint()? },
            CANCELLED => Event::Cancelled { claim: r.uint()?, at: r.uint()? },
            EXPIRED => Event::Expired { claim: r.uint()?, at: r.uint()? },
            PROMOTED => Event::Promoted { claim: r.uint()?, units: r.texts()?, status: r.status()?, at: r.uint()? },
            COMPACTED => Event::Compacted { before: r.uint()? },
            tag => return Err(format!("unknown event tag {tag} at byte {}", r.at - 1)),
        };
        events.push(event);
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the last event", bytes.len() - r.at));
    }
    Ok(())
}

fn uint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn text(out: &mut Vec<u8>, s: &str) {
    uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn texts(out: &mut Vec<u8>, items: &[String]) {
    uint(out, items.len() as u64);
    for s in items {
        text(out, s);
    }
}

fn claim_status(out: &mut Vec<u8>, status: &ClaimStatus) {
    match status {
        ClaimStatus::Confirmed => out.push(STATUS_CONFIRMED),
        ClaimStatus::Held { expires } => {
            out.push(STATUS_HELD);
            uint(out, *expires);
        }
        ClaimStatus::Waitlisted => out.push(STATUS_WAITLISTED),
        ClaimStatus::Cancelled => out.push(STATUS_CANCELLED),
        ClaimStatus::Expired => out.push(STATUS_EXPIRED),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("the batch ends early")?;
        self.at += 1;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(format!("a number too long at byte {}", self.at))
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let len = usize::try_from(self.uint()?).map_err(|e| e.to_string())?;
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or("the batch ends early")?;
        let s = std::str::from_utf8(&self.bytes[self.at..end]).map_err(|e| e.to_string())?;
        self.at = end;
        Ok(s)
    }

    fn texts(&mut self) -> Result<Vec<String>, String> {
        let n = self.uint()?;
        // Bounded by what is left, so a damaged length cannot ask for a huge allocation.
        let mut items = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(self.bytes.len() - self.at));
        for _ in 0..n {
            items.push(self.text()?.to_string());
        }
        Ok(items)
    }

    fn status(&mut self) -> Result<ClaimStatus, String> {
        Ok(match self.byte()? {
            STATUS_CONFIRMED => ClaimStatus::Confirmed,
            STATUS_HELD => ClaimStatus::Held { expires: self.uint()? },
            STATUS_WAITLISTED => ClaimStatus::Waitlisted,
            STATUS_CANCELLED => ClaimStatus::Cancelled,
            STATUS_EXPIRED => ClaimStatus::Expired,
            tag => return Err(format!("unknown claim status {tag} at byte {}", self.at - 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_core::reserve::Stock;

    fn every_kind() -> Vec<Event> {
        vec![
            Event::InventoryCreated(InventorySpec {
                id: "seats".into(),
                stock: Stock::Units(vec!["A-1".into(), "A-2".into()]),
                per_user_limit: Some(2),
                hold_ttl_ms: Some(300_000),
                waitlist: true,
                opens_at: Some(1),
                closes_at: None,
                attributes: Default::default(),
            }),
            Event::Claimed {
                claim: 0,
                inventory: "seats".into(),
                user: "ü-1".into(),
                quantity: 1,
                units: vec!["A-1".into()],
                key: "k".into(),
                status: ClaimStatus::Held { expires: u64::MAX },
                at: 1_700_000_000_000,
            },
            Event::Claimed {
                claim: 1,
                inventory: "seats".into(),
                user: "u2".into(),
                quantity: u32::MAX,
                units: Vec::new(),
                key: "".into(),
                status: ClaimStatus::Waitlisted,
                at: 0,
            },
            Event::Confirmed { claim: 0, at: 5 },
            Event::Cancelled { claim: 0, at: 6 },
            Event::Expired { claim: 300, at: 7 },
            Event::Promoted { claim: 1, units: vec!["A-2".into()], status: ClaimStatus::Confirmed, at: 8 },
            Event::Promoted { claim: 2, units: Vec::new(), status: ClaimStatus::Cancelled, at: 9 },
            Event::Promoted { claim: 3, units: Vec::new(), status: ClaimStatus::Expired, at: 10 },
            Event::Compacted { before: u64::MAX },
        ]
    }

    #[test]
    fn every_event_comes_back_as_it_went_in() {
        let events = every_kind();
        let mut bytes = vec![0xff; 3];
        encode(events.iter(), &mut bytes).expect("encode");
        let mut back = Vec::new();
        decode(&bytes, &mut back).expect("decode");
        assert_eq!(back, events);
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_guess() {
        let mut bytes = Vec::new();
        encode(every_kind().iter(), &mut bytes).expect("encode");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &mut Vec::new()).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &mut Vec::new()).is_err());
        assert!(decode(&[2, 0], &mut Vec::new()).is_err(), "unknown format");
    }
}
