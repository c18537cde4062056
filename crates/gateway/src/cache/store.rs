//! Stored responses within a memory bound, least recently used evicted first, and the one fetch per key
//! that other requests for the key wait on.
//!
//! An entry is replaced, never removed, when it is refreshed: until the new response is stored the old one
//! keeps serving (stale while revalidating, or on error). Only memory pressure evicts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use spillway_core::cache::Lifetime;
use tokio::sync::watch;

/// A response as stored.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stored_at_ms: u64,
    pub lifetime: Lifetime,
    /// How long the fetch took: XFetch refreshes slow-to-fetch entries earlier.
    pub fetch_ms: u64,
}

impl Entry {
    /// What the entry costs in memory, roughly: body, headers, and bookkeeping.
    fn size(&self, key: &str) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
        self.body.len() + headers + key.len() * 2 + 160
    }
}

/// What waiting for a key's fetch gives: the stored entry, or nothing if the response could not be stored.
pub type Landing = watch::Receiver<Option<Option<Arc<Entry>>>>;

#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Slot>,
    /// Use order: tick → key. The smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
    /// Keys with a fetch under way, and where its result lands.
    fetching: HashMap<String, watch::Sender<Option<Option<Arc<Entry>>>>>,
}

#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    tick: u64,
    size: usize,
}

/// The right to fetch a key; dropping it without [`Fetch::land`] tells the waiters to fetch for themselves.
#[derive(Debug)]
pub struct Fetch {
    store: Arc<Store>,
    key: String,
    landed: bool,
}

/// The fetch of a key: ours to do, or someone else's to wait for.
#[derive(Debug)]
pub enum Turn {
    Ours(Fetch),
    Theirs(Landing),
}

impl Store {
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(Inner::default()), max_bytes })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let mut inner = self.inner();
        inner.tick += 1;
        let tick = inner.tick;
        let slot = inner.entries.get_mut(key)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let entry = slot.entry.clone();
        inner.order.remove(&old);
        inner.order.insert(tick, key.to_string());
        Some(entry)
    }

    /// Claims the fetch of `key`, or joins the one under way.
    pub fn fetch(self: &Arc<Self>, key: &str) -> Turn {
        let mut inner = self.inner();
        if let Some(sender) = inner.fetching.get(key) {
            return Turn::Theirs(sender.subscribe());
        }
        inner.fetching.insert(key.to_string(), watch::channel(None).0);
        Turn::Ours(Fetch { store: self.clone(), key: key.to_string(), landed: false })
    }

    #[cfg(test)]
    fn fetching(&self) -> usize {
        self.inner().fetching.len()
    }

    pub fn bytes(&self) -> usize {
        self.inner().bytes
    }

    pub fn entries(&self) -> usize {
        self.inner().entries.len()
    }

    fn put(&self, inner: &mut Inner, key: &str, entry: Arc<Entry>) -> bool {
        let size = entry.size(key);
        if size > self.max_bytes {
            return false;
        }
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.entries.insert(key.to_string(), Slot { entry, tick, size }) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.size;
        }
        inner.order.insert(tick, key.to_string());
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some((_, victim)) = inner.order.pop_first() else { break };
            if let Some(gone) = inner.entries.remove(&victim) {
                inner.bytes -= gone.size;
            }
        }
        true
    }
}

impl Fetch {
    /// Stores the fetched entry (or records that there is none to store) and wakes everyone waiting.
    pub fn land(mut self, entry: Option<Arc<Entry>>) {
        self.landed = true;
        let store = self.store.clone();
        let mut inner = store.inner();
        let stored = entry.filter(|e| store.put(&mut inner, &self.key, e.clone()));
        if let Some(sender) = inner.fetching.remove(&self.key) {
            sender.send_replace(Some(stored));
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if !self.landed {
            let mut inner = self.store.inner();
            if let Some(sender) = inner.fetching.remove(&self.key) {
                sender.send_replace(Some(None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: usize) -> Arc<Entry> {
        Arc::new(Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            stored_at_ms: 0,
            lifetime: Lifetime { fresh_ms: 1000, stale_while_revalidate_ms: 0, stale_if_error_ms: 0 },
            fetch_ms: 1,
        })
    }

    fn store_one(store: &Arc<Store>, key: &str, body: usize) {
        match store.fetch(key) {
            Turn::Ours(f) => f.land(Some(entry(body))),
            Turn::Theirs(_) => panic!("nobody else fetches {key}"),
        }
    }

    #[test]
    fn memory_stays_bounded_and_the_least_recently_used_go_first() {
        let store = Store::new(10_000);
        for i in 0..100 {
            store_one(&store, &format!("k{i}"), 1_000);
            if i > 0 {
                assert!(store.get("k0").is_some(), "k0 is used all the time and stays");
            }
            assert!(store.bytes() <= 10_000);
        }
        assert!(store.get("k1").is_none(), "an old unused entry was evicted");
        assert!(store.get("k99").is_some());
        assert!(store.entries() < 10);
    }

    #[tokio::test]
    async fn one_fetch_per_key_and_the_others_get_its_result() {
        let store = Store::new(1 << 20);
        let Turn::Ours(fetch) = store.fetch("k") else { panic!("first") };
        let Turn::Theirs(mut wait) = store.fetch("k") else { panic!("second joins") };
        fetch.land(Some(entry(10)));
        let landed = wait.wait_for(Option::is_some).await.expect("landed").clone();
        assert_eq!(landed.flatten().map(|e| e.body.len()), Some(10));
        assert_eq!(store.fetching(), 0);
        // A fetch abandoned (its request went away) releases the waiters to fetch for themselves.
        let Turn::Ours(fetch) = store.fetch("j") else { panic!("first") };
        let Turn::Theirs(mut wait) = store.fetch("j") else { panic!("joins") };
        drop(fetch);
        assert!(matches!(*wait.wait_for(Option::is_some).await.expect("told"), Some(None)));
    }
}
