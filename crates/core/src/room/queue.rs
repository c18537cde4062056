//! The line itself: one 8-byte slot per place, in order of rank, with per-chunk counts of who is still
//! waiting so that a position is a sum of a few hundred counters rather than a walk over a million slots.
//!
//! A place is never moved. When its client is admitted, leaves or is reclaimed, the slot changes state; slots
//! at the front that nobody needs any more are dropped. That keeps ranks stable, which is what makes FIFO order
//! trivially free of inversions.

use std::collections::VecDeque;

/// Places per counting chunk. Positions cost one add per chunk ahead plus a scan within one chunk.
const CHUNK: u64 = 1024;

const STATE_SHIFT: u32 = 30;
const TIME_MASK: u32 = (1 << STATE_SHIFT) - 1;

/// Where a place stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Left, reclaimed, or admitted and claimed: nobody holds this place any more.
    Gone = 0,
    Waiting = 1,
    /// Chosen for admission; the client has not yet come back for its pass.
    Admitted = 2,
}

/// A place: the state and a time (last poll while waiting, admission time once admitted) packed in 32 bits,
/// and the position the client started from, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    meta: u32,
    pub start_position: u32,
}

impl Slot {
    pub fn new(state: SlotState, time: u32, start_position: u32) -> Self {
        Self { meta: ((state as u32) << STATE_SHIFT) | (time & TIME_MASK), start_position }
    }

    pub fn state(self) -> SlotState {
        match self.meta >> STATE_SHIFT {
            1 => SlotState::Waiting,
            2 => SlotState::Admitted,
            _ => SlotState::Gone,
        }
    }

    /// Seconds since the room's epoch; 30 bits last 34 years.
    pub fn time(self) -> u32 {
        self.meta & TIME_MASK
    }

    fn with(self, state: SlotState, time: u32) -> Self {
        Self::new(state, time, self.start_position)
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    /// Rank of `slots[0]`.
    base: u64,
    slots: VecDeque<Slot>,
    /// Waiting places in chunk `first_chunk + i`.
    chunks: VecDeque<u32>,
    first_chunk: u64,
    waiting: u64,
    /// No waiting place was last seen before this, so a reclaim with an earlier cutoff has nothing to do.
    /// While clients keep polling, that is every second's reclaim, and a million-place line costs nothing.
    oldest: u32,
}

impl Queue {
    /// Rank the next pushed place gets.
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub fn front(&self) -> u64 {
        self.base
    }

    pub fn waiting(&self) -> u64 {
        self.waiting
    }

    pub fn push(&mut self, slot: Slot) -> u64 {
        let rank = self.end();
        if self.slots.is_empty() {
            self.first_chunk = rank / CHUNK;
            self.chunks.clear();
        }
        let chunk = (rank / CHUNK - self.first_chunk) as usize;
        if chunk >= self.chunks.len() {
            self.chunks.resize(chunk + 1, 0);
        }
        self.slots.push_back(slot);
        if slot.state() == SlotState::Waiting {
            self.chunks[chunk] += 1;
            self.waiting += 1;
            self.oldest = if self.waiting == 1 { slot.time() } else { self.oldest.min(slot.time()) };
        }
        rank
    }

    pub fn get(&self, rank: u64) -> Option<Slot> {
        let i = rank.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?).copied()
    }

    pub fn set(&mut self, rank: u64, state: SlotState, time: u32) {
        let Some(i) = rank.checked_sub(self.base).and_then(|i| usize::try_from(i).ok()) else { return };
        let Some(slot) = self.slots.get_mut(i) else { return };
        let was = slot.state();
        *slot = slot.with(state, time);
        let chunk = (rank / CHUNK - self.first_chunk) as usize;
        match (was == SlotState::Waiting, state == SlotState::Waiting) {
            (true, false) => {
                self.chunks[chunk] -= 1;
                self.waiting -= 1;
            }
            (false, true) => {
                self.chunks[chunk] += 1;
                self.waiting += 1;
                self.oldest = self.oldest.min(time);
            }
            _ => {}
        }
        if state == SlotState::Gone && rank == self.base {
            self.trim();
        }
    }

    /// 1 + the number of places ahead of `rank` still waiting.
    pub fn position(&self, rank: u64) -> u64 {
        // The newest place, as on every join: everyone waiting is ahead of it.
        if rank + 1 == self.end() && self.get(rank).is_some_and(|s| s.state() == SlotState::Waiting) {
            return self.waiting;
        }
        let chunk = rank / CHUNK;
        let full_chunks = (chunk.saturating_sub(self.first_chunk) as usize).min(self.chunks.len());
        let ahead_in_chunks: u64 = self.chunks.iter().take(full_chunks).map(|&c| u64::from(c)).sum();
        let from = (chunk * CHUNK).max(self.base);
        let ahead_here = (from..rank).filter(|&r| self.get(r).is_some_and(|s| s.state() == SlotState::Waiting)).count();
        1 + ahead_in_chunks + ahead_here as u64
    }

    /// The first waiting place at or after `from`.
    pub fn first_waiting(&self, from: u64) -> Option<u64> {
        let mut rank = from.max(self.base);
        while rank < self.end() {
            let chunk = (rank / CHUNK - self.first_chunk) as usize;
            if self.chunks[chunk] == 0 {
                rank = (rank / CHUNK + 1) * CHUNK;
                continue;
            }
            if self.get(rank).is_some_and(|s| s.state() == SlotState::Waiting) {
                return Some(rank);
            }
            rank += 1;
        }
        None
    }

    /// The `n`th waiting place (0-based) in rank order.
    pub fn nth_waiting(&self, mut n: u64) -> Option<u64> {
        for (i, &count) in self.chunks.iter().enumerate() {
            let count = u64::from(count);
            if n >= count {
                n -= count;
                continue;
            }
            let start = ((self.first_chunk + i as u64) * CHUNK).max(self.base);
            return (start..self.end())
                .filter(|&r| self.get(r).is_some_and(|s| s.state() == SlotState::Waiting))
                .nth(n as usize);
        }
        None
    }

    /// Marks every waiting place last seen before `cutoff` as gone; returns how many.
    pub fn reclaim(&mut self, cutoff: u32) -> u64 {
        if cutoff <= self.oldest {
            return 0;
        }
        let mut reclaimed = 0;
        let mut oldest = u32::MAX;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state() != SlotState::Waiting {
                continue;
            }
            if slot.time() < cutoff {
                *slot = slot.with(SlotState::Gone, slot.time());
                let chunk = ((self.base + i as u64) / CHUNK - self.first_chunk) as usize;
                self.chunks[chunk] -= 1;
                reclaimed += 1;
            } else {
                oldest = oldest.min(slot.time());
            }
        }
        self.oldest = oldest;
        self.waiting -= reclaimed;
        self.trim();
        reclaimed
    }

    /// Drops the places at the front that nobody holds.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| s.state() == SlotState::Gone) {
            self.slots.pop_front();
            self.base += 1;
            while self.first_chunk < self.base / CHUNK && !self.chunks.is_empty() {
                self.chunks.pop_front();
                self.first_chunk += 1;
            }
        }
    }

    /// Bytes held per place, for the memory benchmark and the admin view.
    pub fn capacity_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.chunks.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(n: u64) -> Queue {
        let mut q = Queue::default();
        for _ in 0..n {
            q.push(Slot::new(SlotState::Waiting, 0, 0));
        }
        q
    }

    #[test]
    fn positions_count_only_the_waiting_ahead() {
        let mut q = queue(5000);
        assert_eq!(q.position(0), 1);
        assert_eq!(q.position(4999), 5000);
        assert_eq!(q.position(4998), 4999);
        q.set(10, SlotState::Gone, 0);
        q.set(2000, SlotState::Admitted, 0);
        assert_eq!(q.position(4999), 4998);
        assert_eq!(q.position(5), 6);
        assert_eq!(q.waiting(), 4998);
    }

    #[test]
    fn front_is_trimmed_and_chunks_follow() {
        let mut q = queue(3000);
        for r in 0..2500 {
            q.set(r, SlotState::Gone, 0);
        }
        assert_eq!(q.front(), 2500);
        assert_eq!(q.position(2999), 500);
        assert_eq!(q.first_waiting(0), Some(2500));
        assert_eq!(q.nth_waiting(0), Some(2500));
        assert_eq!(q.nth_waiting(499), Some(2999));
        assert_eq!(q.nth_waiting(500), None);
    }

    #[test]
    fn reclaim_takes_the_stale_only() {
        let mut q = Queue::default();
        for t in 0..10 {
            q.push(Slot::new(SlotState::Waiting, t, 0));
        }
        assert_eq!(q.reclaim(5), 5);
        assert_eq!(q.front(), 5);
        assert_eq!(q.waiting(), 5);
        assert_eq!(q.position(9), 5);
    }

    #[test]
    fn slots_are_eight_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 8);
    }
}
