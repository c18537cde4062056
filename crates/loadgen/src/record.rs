//! Where results go while the run is on. Each user buffers its own samples and hands them to one of a few
//! shards in batches, so thousands of concurrent users do not queue on one lock and nobody needs a histogram
//! of its own; the report merges the shards at the end.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::client::Failure;
use crate::histogram::Latencies;

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Second {
    pub second: u64,
    /// Attempts sent in this second.
    pub sent: u64,
    /// Attempts answered 1xx to 4xx in this second.
    pub ok: u64,
    /// Room holds (503 with the room's status) answered in this second.
    pub held: u64,
    /// Attempts that got no answer, or a 5xx that is not a room hold, in this second.
    pub errors: u64,
    /// Users admitted by the room in this second.
    pub admitted: u64,
    /// Claims confirmed or held in this second.
    pub claims: u64,
}

/// What the shards add up.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub latency: Latencies,
    pub statuses: BTreeMap<u16, u64>,
    pub failures: BTreeMap<&'static str, u64>,
    pub retries: u64,
    pub timeline: Vec<Second>,
}

impl Tally {
    /// Second `s` of the timeline, made (with every second before it, each numbered) if it is new.
    pub fn second(&mut self, s: u32) -> &mut Second {
        let s = s as usize;
        while self.timeline.len() <= s {
            let second = self.timeline.len() as u64;
            self.timeline.push(Second { second, ..Second::default() });
        }
        &mut self.timeline[s]
    }

    pub fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.retries += other.retries;
        // By position: the entry at index i is second i, whatever its own field says.
        for (i, s) in other.timeline.iter().enumerate() {
            let mine = self.second(u32::try_from(i).unwrap_or(u32::MAX));
            mine.sent += s.sent;
            mine.ok += s.ok;
            mine.held += s.held;
            mine.errors += s.errors;
            mine.admitted += s.admitted;
            mine.claims += s.claims;
        }
    }
}

/// One attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub sent_sec: u32,
    pub done_sec: u32,
    pub latency_us: u64,
    pub result: Result<u16, Failure>,
    pub held: bool,
    pub retry: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark {
    Admitted,
    Claimed,
}

#[derive(Debug)]
pub(crate) struct Shards {
    shards: Vec<Mutex<Tally>>,
}

const BATCH: usize = 128;

impl Shards {
    pub fn new(n: usize) -> Self {
        Self { shards: (0..n.max(1)).map(|_| Mutex::new(Tally::default())).collect() }
    }

    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Tally> {
        self.shards[i % self.shards.len()].lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn merged(&self) -> Tally {
        let mut all = Tally::default();
        for i in 0..self.shards.len() {
            all.merge(&self.lock(i));
        }
        all
    }
}

/// One user's buffer.
#[derive(Debug)]
pub(crate) struct Recorder<'a> {
    shards: &'a Shards,
    shard: usize,
    buffer: Vec<Sample>,
}

impl<'a> Recorder<'a> {
    pub fn new(shards: &'a Shards, user: usize) -> Self {
        Self { shards, shard: user, buffer: Vec::new() }
    }

    pub fn sample(&mut self, s: Sample) {
        self.buffer.push(s);
        if self.buffer.len() >= BATCH {
            self.flush();
        }
    }

    /// Admissions and claims are rare next to requests: straight to the shard.
    pub fn mark(&mut self, sec: u32, mark: Mark) {
        let mut tally = self.shards.lock(self.shard);
        let second = tally.second(sec);
        match mark {
            Mark::Admitted => second.admitted += 1,
            Mark::Claimed => second.claims += 1,
        }
    }

    pub fn flush(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut tally = self.shards.lock(self.shard);
        for s in self.buffer.drain(..) {
            tally.latency.record_us(s.latency_us);
            tally.second(s.sent_sec).sent += 1;
            if s.retry {
                tally.retries += 1;
            }
            match s.result {
                Ok(status) => {
                    *tally.statuses.entry(status).or_default() += 1;
                    let second = tally.second(s.done_sec);
                    if s.held {
                        second.held += 1;
                    } else if status >= 500 {
                        second.errors += 1;
                    } else {
                        second.ok += 1;
                    }
                }
                Err(f) => {
                    *tally.failures.entry(f.as_str()).or_default() += 1;
                    tally.second(s.done_sec).errors += 1;
                }
            }
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sent_sec: u32, done_sec: u32, result: Result<u16, Failure>) -> Sample {
        Sample { sent_sec, done_sec, latency_us: 1_000, result, held: false, retry: false }
    }

    #[test]
    fn the_merged_timeline_puts_each_event_in_its_own_second() {
        let shards = Shards::new(4);
        {
            // Two users on two shards, events spread over seconds 0 to 5.
            let mut a = Recorder::new(&shards, 0);
            a.sample(sample(0, 0, Ok(200)));
            a.sample(sample(2, 3, Ok(200)));
            a.mark(3, Mark::Admitted);
            let mut b = Recorder::new(&shards, 1);
            b.sample(sample(2, 2, Ok(503)));
            b.sample(sample(5, 5, Err(Failure::Timeout)));
            b.mark(5, Mark::Claimed);
        }
        let all = shards.merged();
        let t = &all.timeline;
        assert_eq!(t.len(), 6);
        assert!(t.iter().enumerate().all(|(i, s)| s.second == i as u64), "each entry is numbered by its place");
        let at = |s: usize| (t[s].sent, t[s].ok, t[s].errors, t[s].admitted, t[s].claims);
        assert_eq!(at(0), (1, 1, 0, 0, 0));
        assert_eq!(at(1), (0, 0, 0, 0, 0));
        assert_eq!(at(2), (2, 0, 1, 0, 0), "two sent in second 2, one answered 503 then");
        assert_eq!(at(3), (0, 1, 0, 1, 0), "answered and admitted in second 3");
        assert_eq!(at(4), (0, 0, 0, 0, 0));
        assert_eq!(at(5), (1, 0, 1, 0, 1));
        // The seconds add up to the totals.
        assert_eq!(t.iter().map(|s| s.sent).sum::<u64>(), 4);
        assert_eq!(t.iter().map(|s| s.ok + s.errors + s.held).sum::<u64>(), 4);
    }
}
