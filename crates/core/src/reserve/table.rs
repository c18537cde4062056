//! Claims by id. The engine numbers claims 0, 1, 2…, so they live in a vector indexed by id: a lookup is one
//! memory access and growth moves no hashed entries. An id out of that sequence (only a log written by
//! something else could hold one) goes to a map beside it, so any log still replays.
//!
//! The vector is kept in chunks of [`CHUNK`] claims, because the engine decides every claim under one lock: one
//! vector doubling at a few million claims would copy hundreds of megabytes while every claim waits. A full
//! chunk is never moved; only the newest one grows, and at most to a chunk's size.

use super::claimants::FastMap;

/// Claims per chunk: at ~140 bytes a claim, a chunk is ~9 MB, and the longest copy growth makes is half that.
const CHUNK: usize = 1 << 16;

#[derive(Debug)]
pub(super) struct Table<T> {
    /// Ids `0..len()`, id `i` at `chunks[i / CHUNK][i % CHUNK]`; every chunk but the last is full. No id
    /// below `len()` is ever in `sparse`.
    chunks: Vec<Vec<T>>,
    sparse: FastMap<u64, T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), sparse: FastMap::default() }
    }
}

impl<T> Table<T> {
    /// Ids in the sequence: `0..len()`.
    fn len(&self) -> usize {
        self.chunks.last().map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        match usize::try_from(id) {
            Ok(i) if i < self.len() => Some(&self.chunks[i / CHUNK][i % CHUNK]),
            _ => self.sparse.get(&id),
        }
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        match usize::try_from(id) {
            Ok(i) if i < self.len() => Some(&mut self.chunks[i / CHUNK][i % CHUNK]),
            _ => self.sparse.get_mut(&id),
        }
    }

    /// Inserts or replaces.
    pub fn insert(&mut self, id: u64, value: T) {
        match usize::try_from(id) {
            Ok(i) if i < self.len() => self.chunks[i / CHUNK][i % CHUNK] = value,
            Ok(i) if i == self.len() => {
                self.sparse.remove(&id);
                self.push(value);
                // Ids that arrived early join the sequence once it reaches them.
                while !self.sparse.is_empty() {
                    match self.sparse.remove(&(self.len() as u64)) {
                        Some(next) => self.push(next),
                        None => break,
                    }
                }
            }
            _ => {
                self.sparse.insert(id, value);
            }
        }
    }

    fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            // The first chunk grows as a vector does, so a small engine stays small; the later ones are
            // allocated whole.
            last => {
                let mut chunk = if last.is_none() { Vec::new() } else { Vec::with_capacity(CHUNK) };
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> + Clone {
        self.chunks.iter().flatten().chain(self.sparse.values())
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Table};

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
        assert_eq!(t.len(), 4, "3 joined the sequence once 2 arrived");
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
        assert_eq!(t.len(), n as usize);
        assert!(t.sparse.is_empty());
        assert_eq!(t.chunks.len(), 3);
        assert!(t.chunks.iter().take(2).all(|c| c.len() == CHUNK), "full chunks");
        assert_eq!(t.get(CHUNK as u64), Some(&u64::MAX));
        for id in [0, CHUNK as u64 - 1, CHUNK as u64 + 1, n - 1] {
            assert_eq!(t.get(id), Some(&id));
        }
        assert_eq!(t.get(n), None);
        assert_eq!(t.values().count(), n as usize);
    }
}
