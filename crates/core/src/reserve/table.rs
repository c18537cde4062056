//! Claims by id. The engine numbers claims 0, 1, 2…, so they live in a vector indexed by id: a lookup is one
//! memory access and growth moves no hashed entries. An id out of that sequence (only a log written by
//! something else could hold one) goes to a map beside it, so any log still replays.
//!
//! The vector is kept in chunks of [`CHUNK`] claims, because the engine decides every claim under one lock: one
//! vector doubling at a few million claims would copy hundreds of megabytes while every claim waits. A full
//! chunk is never moved; only the newest one grows, and at most to a chunk's size.
//!
//! Finished claims are forgotten once their retention ends ([`Table::remove`]), so that endless claim and
//! cancel churn keeps memory flat. A full chunk whose claims are nearly all gone would still cost a whole
//! chunk for the few left in it, and one patient client could pin one chunk per claim it keeps; so once fewer
//! than [`EVACUATE_BELOW`] of a full chunk remain, they move to the map and the chunk is freed. Memory then
//! follows the claims that are kept, not the ids ever given out.

use super::claimants::FastMap;

/// Claims per chunk: at ~140 bytes a claim, a chunk is ~9 MB, and the longest copy growth makes is half that.
const CHUNK: usize = 1 << 16;

/// A full chunk with fewer claims left than this gives them to the map and is freed: at most 1/16 of a
/// chunk's moves at once, and a kept claim costs no more than a map entry.
const EVACUATE_BELOW: usize = CHUNK / 16;

#[derive(Debug)]
struct Chunk<T> {
    /// `CHUNK` slots once full; empty once freed (its remaining claims are then in the map).
    slots: Vec<Option<T>>,
    live: usize,
}

#[derive(Debug)]
pub(super) struct Table<T> {
    /// Ids `0..len`, id `i` at `chunks[i / CHUNK].slots[i % CHUNK]`, or in `sparse` if its chunk was freed;
    /// every chunk but the last is full or freed.
    chunks: Vec<Chunk<T>>,
    len: usize,
    sparse: FastMap<u64, T>,
    /// Values held, wherever they are.
    count: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0, sparse: FastMap::default(), count: 0 }
    }
}

impl<T> Table<T> {
    /// The chunk and slot of an id in the sequence whose chunk still holds its claims.
    fn slot(&self, id: u64) -> Option<(usize, usize)> {
        let i = usize::try_from(id).ok().filter(|&i| i < self.len)?;
        let chunk = i / CHUNK;
        (!self.chunks[chunk].slots.is_empty()).then_some((chunk, i % CHUNK))
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        match self.slot(id) {
            Some((c, s)) => self.chunks[c].slots[s].as_ref(),
            None => self.sparse.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        match self.slot(id) {
            Some((c, s)) => self.chunks[c].slots[s].as_mut(),
            None => self.sparse.get_mut(&id),
        }
    }

    /// Values held.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, id: u64, value: T) {
        if let Some((c, s)) = self.slot(id) {
            let chunk = &mut self.chunks[c];
            if chunk.slots[s].replace(value).is_none() {
                chunk.live += 1;
                self.count += 1;
            }
        } else if usize::try_from(id).is_ok_and(|i| i == self.len) {
            if self.sparse.remove(&id).is_none() {
                self.count += 1;
            }
            self.push(value);
            // Ids that arrived early join the sequence once it reaches them.
            while !self.sparse.is_empty() {
                match self.sparse.remove(&(self.len as u64)) {
                    Some(next) => self.push(next),
                    None => break,
                }
            }
        } else if self.sparse.insert(id, value).is_none() {
            self.count += 1;
        }
    }

    /// Takes a value out, freeing its chunk if little of it is left.
    pub fn remove(&mut self, id: u64) -> Option<T> {
        let Some((c, s)) = self.slot(id) else {
            let value = self.sparse.remove(&id);
            self.count -= usize::from(value.is_some());
            return value;
        };
        let chunk = &mut self.chunks[c];
        let value = chunk.slots[s].take()?;
        chunk.live -= 1;
        self.count -= 1;
        if chunk.slots.len() == CHUNK && chunk.live < EVACUATE_BELOW {
            let base = (c * CHUNK) as u64;
            let slots = std::mem::take(&mut chunk.slots);
            chunk.live = 0;
            let kept = slots.into_iter().enumerate().filter_map(|(s, v)| v.map(|v| (base + s as u64, v)));
            self.sparse.extend(kept);
        }
        Some(value)
    }

    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if !self.len.is_multiple_of(CHUNK) => {
                chunk.slots.push(Some(value));
                chunk.live += 1;
            }
            // The first chunk grows as a vector does, so a small engine stays small; the later ones are
            // allocated whole.
            last => {
                let mut slots = if last.is_none() { Vec::new() } else { Vec::with_capacity(CHUNK) };
                slots.push(Some(value));
                self.chunks.push(Chunk { slots, live: 1 });
            }
        }
        self.len += 1;
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> + Clone {
        self.chunks.iter().flat_map(|c| c.slots.iter().flatten()).chain(self.sparse.values())
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, EVACUATE_BELOW, Table};

    #[test]
    fn ids_in_any_order_are_all_found() {
        let mut t = Table::default();
        for id in [3u64, 0, 1, u64::MAX, 2, 5, 1] {
            t.insert(id, id.wrapping_mul(10));
        }
        for id in [0u64, 1, 2, 3, 5, u64::MAX] {
            assert_eq!(t.get(id), Some(&id.wrapping_mul(10)));
        }
        assert_eq!(t.get(4), None);
        assert_eq!(t.len, 4, "3 joined the sequence once 2 arrived");
        *t.get_mut(5).expect("present") = 7;
        let mut all: Vec<u64> = t.values().copied().collect();
        all.sort_unstable();
        assert_eq!(all, [0, 7, 10, 20, 30, u64::MAX.wrapping_mul(10)]);
    }

    #[test]
    fn ids_across_chunks_stay_where_they_were_put() {
        let mut t = Table::default();
        let n = 2 * CHUNK as u64 + 5;
        // One id ahead of the sequence, so it joins from the side map at a chunk boundary.
        t.insert(CHUNK as u64, u64::MAX);
        for id in (0..n).filter(|&id| id != CHUNK as u64) {
            t.insert(id, id);
        }
        assert_eq!(t.len, n as usize);
        assert!(t.sparse.is_empty());
        assert_eq!(t.chunks.len(), 3);
        assert!(t.chunks.iter().take(2).all(|c| c.slots.len() == CHUNK), "full chunks");
        assert_eq!(t.get(CHUNK as u64), Some(&u64::MAX));
        for id in [0, CHUNK as u64 - 1, CHUNK as u64 + 1, n - 1] {
            assert_eq!(t.get(id), Some(&id));
        }
        assert_eq!(t.get(n), None);
        assert_eq!(t.values().count(), n as usize);
    }

    #[test]
    fn a_chunk_nearly_emptied_is_freed_and_its_survivors_stay_found() {
        let mut t = Table::default();
        let n = 2 * CHUNK as u64 + 10;
        for id in 0..n {
            t.insert(id, id);
        }
        // Keep a few of the first chunk, as a client holding one claim per chunk would.
        let kept: Vec<u64> = (0..EVACUATE_BELOW as u64 - 1).map(|i| i * 16 + 3).collect();
        for id in (0..CHUNK as u64).filter(|id| !kept.contains(id)) {
            assert_eq!(t.remove(id), Some(id));
        }
        assert!(t.chunks[0].slots.is_empty(), "freed");
        assert_eq!(t.sparse.len(), kept.len());
        for &id in &kept {
            assert_eq!(t.get(id), Some(&id));
        }
        assert_eq!(t.get(5), None, "removed stays removed");
        assert_eq!(t.remove(5), None);
        // Ids after the freed chunk are untouched, and a survivor can still be replaced and removed.
        assert_eq!(t.get(CHUNK as u64 + 7), Some(&(CHUNK as u64 + 7)));
        t.insert(kept[0], 99);
        assert_eq!(t.remove(kept[0]), Some(99));
        assert_eq!(t.values().count(), kept.len() - 1 + (n as usize - CHUNK));
        assert_eq!(t.count(), t.values().count());
        // The last, partial chunk is never freed, and the sequence goes on after it.
        for id in 2 * CHUNK as u64..n {
            t.remove(id);
        }
        t.insert(n, n);
        assert_eq!(t.get(n), Some(&n));
    }
}
