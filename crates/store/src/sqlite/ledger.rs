//! The ledger in an SQLite file, written by one thread with group commit.
//!
//! An append joins a queue shared with the writer thread and gets the next sequence number. The writer takes
//! everything queued, writes it as one row in one transaction, commits (an fsync under `synchronous=FULL`),
//! then publishes "durable through sequence N"; each append's future resolves once N reaches its number. Under
//! load one fsync covers hundreds of claims; alone, an append costs one fsync. Order is the queue's order,
//! which is the order the engine decided in. No channel message, no per-append wakeup of the writer while it
//! is busy, no row or JSON per event. Waiters are kept in sequence order, so a commit wakes exactly the
//! appends it made durable and nobody else: a wake-up is a thread switch, and under load they dominate.
//!
//! One server per ledger: two would each decide on their own copy of the state and could both sell the last
//! item. The lock is taken on the database file itself (an exclusive `flock`, held while the ledger is open
//! and released by the operating system if the process dies), so it belongs to the file whatever path reaches
//! it: a symlink or a second hard link finds it taken, where a lock file named after the path would not. On
//! Linux `flock` does not touch the POSIX record locks SQLite takes, so `sqlite3 ledger.db .backup` still
//! works while the server runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::{self, BoxFuture};
use rusqlite::Connection;
use spillway_core::reserve::Event;
use tokio::sync::oneshot;

use super::batch;
use crate::ledger::{CommitObserver, Ledger, LedgerError, LedgerStats};

/// Most appends written in one transaction: bounds the latency one commit adds to the first append in it.
const MAX_BATCH: usize = 4096;

/// Appends not yet taken by the writer.
#[derive(Debug, Default)]
struct Queue {
    /// Their events, encoded in order by the appenders, in one buffer the writer swaps with its own. The
    /// writer thread then neither encodes nor drops events: dropping one releases names the engine shares,
    /// memory last touched on another core, and under load there is one per claim.
    bytes: Vec<u8>,
    /// Where each append ends: in `bytes`, and in events counted from the first queued. A transaction always
    /// holds whole appends.
    ends: Vec<(usize, usize)>,
    /// Sequence number of the last append accepted (the first is 1).
    accepted: u64,
    /// The writer is parked and must be woken for the next append; while it writes, nobody wakes it.
    writer_parked: bool,
    /// The ledger was dropped: the writer finishes what is queued and exits.
    closed: bool,
    /// A write failed, and why: nothing more is accepted, and nothing after `durable` will ever be durable.
    failed: Option<LedgerError>,
    /// Durable through this sequence number.
    durable: u64,
    /// Appends (and barriers) waiting for their sequence number to be durable, in sequence order.
    waiters: std::collections::VecDeque<(u64, oneshot::Sender<Result<(), LedgerError>>)>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    wake_writer: Condvar,
    /// Mirrors of `Queue::accepted` and `Queue::durable`, read without a lock by [`Ledger::all_durable`].
    accepted: AtomicU64,
    durable: AtomicU64,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
pub struct SqliteLedger {
    shared: Arc<Shared>,
    pub stats: Arc<LedgerStats>,
    path: PathBuf,
    /// Joined on close (and drop), so that a closed ledger has released its file and can be opened again.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SqliteLedger {
    /// Opens (or creates) the ledger and returns it with every event already in it, in order, for replay.
    pub fn open(path: &Path) -> Result<(Self, Vec<Event>), LedgerError> {
        let fail = |reason: String| LedgerError::Open { path: path.display().to_string(), reason };
        let lock = lock_file(path).map_err(fail)?;
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);",
        )
        .map_err(|e| fail(e.to_string()))?;
        let events = read_all(&conn).map_err(fail)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake_writer: Condvar::new(),
            accepted: AtomicU64::new(0),
            durable: AtomicU64::new(0),
        });
        let stats = Arc::new(LedgerStats::default());
        let (writer_shared, writer_stats) = (shared.clone(), stats.clone());
        let writer = std::thread::Builder::new()
            .name("spillway-ledger".into())
            .spawn(move || {
                write_loop(conn, &writer_shared, &writer_stats);
                // Released only once the last commit is done and the connection closed.
                drop(lock);
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok((Self { shared, stats, path: path.to_path_buf(), writer: Mutex::new(Some(writer)) }, events))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SqliteLedger {
    fn drop(&mut self) {
        self.close();
    }
}

/// Opens (or creates, empty, as SQLite would) the database file and takes its lock, or says who has it.
/// The handle is kept until the connection is closed: closing it earlier would also drop SQLite's own POSIX
/// locks on the file, which belong to the process, not to the handle.
fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err("another process has this ledger open (one server per \
             ledger: two would each decide on their own state and could oversell)"
            .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e.to_string()),
    }
}

/// Every event in order: rows of one event as JSON (what earlier versions wrote) come first, then the
/// batches, since a ledger once written by this version is never written one event per row again.
fn read_all(conn: &Connection) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut stmt = conn.prepare("SELECT seq, body FROM events ORDER BY seq").map_err(|e| e.to_string())?;
    let rows =
        stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))).map_err(|e| e.to_string())?;
    for row in rows {
        let (seq, body) = row.map_err(|e| e.to_string())?;
        events.push(serde_json::from_str(&body).map_err(|e| format!("event {seq} is unreadable: {e}"))?);
    }
    let mut stmt = conn.prepare("SELECT seq, body FROM batches ORDER BY seq").map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let seq: i64 = row.get(0).map_err(|e| e.to_string())?;
        let body = row.get_ref(1).and_then(|v| v.as_blob().map_err(Into::into)).map_err(|e| e.to_string())?;
        batch::decode(body, &mut events).map_err(|e| format!("batch {seq} is unreadable: {e}"))?;
    }
    Ok(events)
}

fn write_loop(mut conn: Connection, shared: &Shared, stats: &LedgerStats) {
    let mut batch: Vec<u8> = Vec::new();
    let mut ends: Vec<(usize, usize)> = Vec::new();
    let mut row = Vec::new();
    let mut durable = 0;
    loop {
        let (appends, events) = {
            let mut queue = shared.queue();
            while queue.ends.is_empty() {
                if queue.closed {
                    return;
                }
                queue.writer_parked = true;
                queue = shared.wake_writer.wait(queue).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if queue.ends.len() <= MAX_BATCH {
                std::mem::swap(&mut queue.bytes, &mut batch);
                std::mem::swap(&mut queue.ends, &mut ends);
                (ends.len(), ends.last().map_or(0, |&(_, events)| events))
            } else {
                let (byte_cut, event_cut) = queue.ends[MAX_BATCH - 1];
                batch.extend(queue.bytes.drain(..byte_cut));
                queue.ends.drain(..MAX_BATCH);
                queue
                    .ends
                    .iter_mut()
                    .for_each(|(bytes, events)| (*bytes, *events) = (*bytes - byte_cut, *events - event_cut));
                (MAX_BATCH, event_cut)
            }
        };
        let started = Instant::now();
        batch::assemble(events, &batch, &mut row);
        let result = write(&mut conn, &row);
        let took = started.elapsed();
        stats.commit_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Some(CommitObserver(observe)) = stats.on_commit.get() {
            observe(took, appends);
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.appends.fetch_add(appends as u64, Ordering::Relaxed);
        stats.events.fetch_add(events as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                durable += appends as u64;
                let mut done = Vec::new();
                {
                    let mut queue = shared.queue();
                    queue.durable = durable;
                    shared.durable.store(durable, Ordering::Release);
                    while queue.waiters.front().is_some_and(|(target, _)| *target <= durable) {
                        done.extend(queue.waiters.pop_front());
                    }
                }
                for (_, waiter) in done {
                    let _ = waiter.send(Ok(()));
                }
            }
            Err(e) => {
                // Stop: events decided after these may depend on them. Every later append is refused.
                let waiters = {
                    let mut queue = shared.queue();
                    queue.failed = Some(e.clone());
                    queue.bytes.clear();
                    queue.ends.clear();
                    std::mem::take(&mut queue.waiters)
                };
                for (_, waiter) in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
                return;
            }
        }
        batch.clear();
        ends.clear();
    }
}

fn write(conn: &mut Connection, row: &[u8]) -> Result<(), LedgerError> {
    let err = |e: rusqlite::Error| LedgerError::Write(e.to_string());
    let tx = conn.transaction().map_err(err)?;
    tx.prepare_cached("INSERT INTO batches (body) VALUES (?1)").map_err(err)?.execute([row]).map_err(err)?;
    tx.commit().map_err(err)
}

fn stopped() -> LedgerError {
    LedgerError::Write("the ledger writer has stopped".into())
}

impl Ledger for SqliteLedger {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), LedgerError>> {
        let shared = &self.shared;
        // A barrier that finds everything durable needs no lock.
        if events.is_empty() && shared.durable.load(Ordering::Acquire) >= shared.accepted.load(Ordering::Acquire) {
            return future::ready(Ok(())).boxed();
        }
        let mut queue = shared.queue();
        if let Some(failed) = &queue.failed {
            return future::ready(Err(failed.clone())).boxed();
        }
        if queue.closed {
            return future::ready(Err(stopped())).boxed();
        }
        let mut wake = false;
        if !events.is_empty() {
            let start = queue.bytes.len();
            for event in &events {
                if let Err(e) = batch::encode_event(event, &mut queue.bytes) {
                    // Nothing of this append is kept; the ledger itself is fine.
                    queue.bytes.truncate(start);
                    return future::ready(Err(LedgerError::Write(e))).boxed();
                }
            }
            let counted = queue.ends.last().map_or(0, |&(_, events)| events) + events.len();
            let end = (queue.bytes.len(), counted);
            queue.ends.push(end);
            queue.accepted += 1;
            shared.accepted.store(queue.accepted, Ordering::Release);
            wake = std::mem::take(&mut queue.writer_parked);
        }
        let target = queue.accepted;
        // Checked and registered under the lock the writer publishes under: no commit can slip in between.
        if queue.durable >= target {
            return future::ready(Ok(())).boxed();
        }
        let (done, wait) = oneshot::channel();
        queue.waiters.push_back((target, done));
        drop(queue);
        if wake {
            shared.wake_writer.notify_one();
        }
        wait.map(|r| r.unwrap_or_else(|_| Err(stopped()))).boxed()
    }

    fn all_durable(&self) -> bool {
        let accepted = self.shared.accepted.load(Ordering::Acquire);
        self.shared.durable.load(Ordering::Acquire) >= accepted
    }

    fn failure(&self) -> Option<LedgerError> {
        self.shared.queue().failed.clone()
    }

    fn close(&self) {
        self.shared.queue().closed = true;
        self.shared.wake_writer.notify_one();
        let writer = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_core::reserve::{ClaimStatus, InventorySpec, Stock};

    fn claimed(claim: u64) -> Event {
        Event::Claimed {
            claim,
            inventory: "c".into(),
            user: format!("u{claim}").into(),
            quantity: 1,
            units: Vec::new(),
            key: "k".into(),
            status: ClaimStatus::Confirmed,
            at: claim,
        }
    }

    #[tokio::test]
    async fn appended_events_come_back_in_order_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let spec = InventorySpec {
            id: "c".into(),
            stock: Stock::Counted(10),
            per_user_limit: None,
            hold_ttl_ms: None,
            waitlist: false,
            opens_at: None,
            closes_at: None,
            attributes: Default::default(),
        };
        {
            let (ledger, existing) = SqliteLedger::open(&path).expect("open");
            assert!(existing.is_empty());
            // The observer hears of every commit and, summed, of every append.
            let seen = Arc::new(Mutex::new((0u64, 0usize)));
            let tally = seen.clone();
            let observer = CommitObserver(Box::new(move |_, appends| {
                let mut seen = tally.lock().expect("lock");
                *seen = (seen.0 + 1, seen.1 + appends);
            }));
            ledger.stats.on_commit.set(observer).expect("first observer");
            ledger.append(vec![Event::InventoryCreated(spec.clone())]).await.expect("append");
            let appends: Vec<_> = (0..100).map(|i| ledger.append(vec![claimed(i)])).collect();
            for a in futures_util::future::join_all(appends).await {
                a.expect("durable");
            }
            ledger.append(Vec::new()).await.expect("barrier");
            assert!(ledger.stats.commits.load(Ordering::Relaxed) <= 102);
            assert_eq!(*seen.lock().expect("lock"), (ledger.stats.commits.load(Ordering::Relaxed), 101));
        }
        let (_, events) = SqliteLedger::open(&path).expect("reopen");
        assert_eq!(events.len(), 101);
        assert_eq!(events[0], Event::InventoryCreated(spec));
        assert_eq!(events[1..], (0..100).map(claimed).collect::<Vec<_>>()[..]);
    }

    #[tokio::test]
    async fn rows_of_one_json_event_are_read_before_the_batches_that_follow_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);").expect("table");
            for i in 0..3 {
                let body = serde_json::to_string(&claimed(i)).expect("json");
                conn.execute("INSERT INTO events (body) VALUES (?1)", [body]).expect("insert");
            }
        }
        {
            let (ledger, existing) = SqliteLedger::open(&path).expect("open");
            assert_eq!(existing, (0..3).map(claimed).collect::<Vec<_>>());
            ledger.append(vec![claimed(3), claimed(4)]).await.expect("append");
            ledger.append(vec![claimed(5)]).await.expect("append");
        }
        let (_, events) = SqliteLedger::open(&path).expect("reopen");
        assert_eq!(events, (0..6).map(claimed).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn it_says_all_is_durable_only_once_the_commit_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (ledger, _) = SqliteLedger::open(&path).expect("open");
        assert!(ledger.all_durable(), "nothing appended yet");
        // Another connection holds the write lock: the writer can take the append but not commit it.
        let other = Connection::open(&path).expect("open");
        other.execute_batch("BEGIN IMMEDIATE;").expect("lock");
        let mut appended = ledger.append(vec![claimed(0)]);
        let mut barrier = ledger.append(Vec::new());
        assert!(!ledger.all_durable());
        assert!((&mut appended).now_or_never().is_none());
        assert!((&mut barrier).now_or_never().is_none(), "a barrier waits for what was appended before it");
        other.execute_batch("ROLLBACK;").expect("unlock");
        appended.await.expect("durable");
        barrier.await.expect("barrier");
        assert!(ledger.all_durable());
        assert!(ledger.append(Vec::new()).now_or_never().is_some(), "nothing to wait for");
        assert_eq!(ledger.stats.events.load(Ordering::Relaxed), 1, "a barrier writes nothing");
    }

    #[tokio::test]
    async fn a_long_queue_is_written_in_transactions_of_whole_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (ledger, _) = SqliteLedger::open(&path).expect("open");
        let largest = Arc::new(Mutex::new(0usize));
        let seen = largest.clone();
        let observer = CommitObserver(Box::new(move |_, appends| {
            let mut largest = seen.lock().expect("lock");
            *largest = (*largest).max(appends);
        }));
        ledger.stats.on_commit.set(observer).expect("first observer");
        // Held back by another connection's write lock, more appends queue up than one transaction takes: the
        // writer may take some before the rest arrive, but then at least MAX_BATCH + 1 wait behind them.
        let other = Connection::open(&path).expect("open");
        other.execute_batch("BEGIN IMMEDIATE;").expect("lock");
        let n = 2 * MAX_BATCH as u64 + 1;
        let mut expected = Vec::new();
        let mut appends = Vec::new();
        for i in 0..n {
            // Appends of one and of two events, so a cut in the wrong place would split one.
            let events: Vec<Event> = (0..1 + i % 2).map(|k| claimed(2 * i + k)).collect();
            expected.extend(events.iter().cloned());
            appends.push(ledger.append(events));
        }
        other.execute_batch("ROLLBACK;").expect("unlock");
        for a in futures_util::future::join_all(appends).await {
            a.expect("durable");
        }
        assert_eq!(*largest.lock().expect("lock"), MAX_BATCH, "at most MAX_BATCH appends per transaction");
        assert_eq!(ledger.stats.appends.load(Ordering::Relaxed), n);
        ledger.close();
        let (_, events) = SqliteLedger::open(&path).expect("reopen");
        assert_eq!(events, expected);
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_ledger_and_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (ledger, _) = SqliteLedger::open(&path).expect("open");
        ledger.append(vec![claimed(0)]).await.expect("append");
        assert!(ledger.failure().is_none());
        // A real write failure: the table the writer inserts into is gone.
        Connection::open(&path).expect("open").execute_batch("DROP TABLE batches;").expect("drop");
        let err = ledger.append(vec![claimed(1)]).await.expect_err("the write fails");
        assert!(err.to_string().contains("no such table"), "{err}");
        assert_eq!(ledger.failure().map(|e| e.to_string()), Some(err.to_string()));
        assert!(ledger.append(vec![claimed(2)]).await.is_err(), "nothing more is taken");
        assert!(ledger.append(Vec::new()).await.is_err(), "nor promised durable");
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_a_ledger_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (ledger, _) = SqliteLedger::open(&path).expect("open");
        ledger.append(vec![claimed(0)]).await.expect("append");
        // The lock is per open file, so a second open in one process is refused as a second process would be.
        let err = SqliteLedger::open(&path).expect_err("the ledger is in use");
        assert!(err.to_string().contains("another process has this ledger open"), "{err}");
        // Closed (while still held, as a stopping server's tasks may hold it): at once, a restart opens it with
        // what it held, and the closed one takes nothing more.
        ledger.close();
        let (_, reopened) = SqliteLedger::open(&path).expect("reopen");
        assert_eq!(reopened, vec![claimed(0)]);
        assert!(ledger.append(vec![claimed(1)]).await.is_err(), "a closed ledger refuses appends");
    }

    #[tokio::test]
    async fn the_lock_belongs_to_the_file_whatever_path_reaches_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.db");
        let (ledger, _) = SqliteLedger::open(&path).expect("open");
        ledger.append(vec![claimed(0)]).await.expect("append");
        let symlink = dir.path().join("via-symlink.db");
        std::os::unix::fs::symlink(&path, &symlink).expect("symlink");
        let hard_link = dir.path().join("via-hard-link.db");
        std::fs::hard_link(&path, &hard_link).expect("hard link");
        let relative = dir.path().join(".").join("sub").join("..").join("ledger.db");
        std::fs::create_dir(dir.path().join("sub")).expect("dir");
        for other in [&symlink, &hard_link, &relative] {
            let err = SqliteLedger::open(other).expect_err("the same file is in use");
            assert!(err.to_string().contains("another process has this ledger open"), "{}: {err}", other.display());
        }
        ledger.close();
        let (_, events) = SqliteLedger::open(&hard_link).expect("free once closed");
        assert_eq!(events, vec![claimed(0)]);
    }
}
