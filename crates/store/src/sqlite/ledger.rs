//! The ledger in an SQLite file, written by one thread with group commit.
//!
//! Every append goes to the writer thread over a channel. The writer takes the first waiting append, then
//! every other append already waiting, writes them all in one transaction, commits (an fsync under
//! `synchronous=FULL`), and only then answers each of them. Under load one fsync covers hundreds of claims;
//! alone, an append costs one fsync. Order is the channel's order, which is the order the engine decided in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rusqlite::Connection;
use spillway_core::reserve::Event;
use tokio::sync::oneshot;

use crate::ledger::{Ledger, LedgerError};

/// Most appends written in one transaction: bounds the latency one commit adds to the first append in it.
const MAX_BATCH: usize = 4096;

struct Append {
    events: Vec<Event>,
    done: oneshot::Sender<Result<(), LedgerError>>,
}

/// Counters the writer keeps, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct LedgerStats {
    pub commits: AtomicU64,
    pub appends: AtomicU64,
    pub events: AtomicU64,
    /// Total time spent committing, in microseconds.
    pub commit_micros: AtomicU64,
}

#[derive(Debug)]
pub struct SqliteLedger {
    tx: mpsc::Sender<Append>,
    pub stats: Arc<LedgerStats>,
    path: PathBuf,
}

impl SqliteLedger {
    /// Opens (or creates) the ledger and returns it with every event already in it, in order, for replay.
    pub fn open(path: &Path) -> Result<(Self, Vec<Event>), LedgerError> {
        let fail = |reason: String| LedgerError::Open { path: path.display().to_string(), reason };
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        )
        .map_err(|e| fail(e.to_string()))?;
        let events = read_all(&conn).map_err(fail)?;
        let (tx, rx) = mpsc::channel::<Append>();
        let stats = Arc::new(LedgerStats::default());
        let writer_stats = stats.clone();
        std::thread::Builder::new()
            .name("spillway-ledger".into())
            .spawn(move || write_loop(conn, &rx, &writer_stats))
            .map_err(|e| fail(e.to_string()))?;
        Ok((Self { tx, stats, path: path.to_path_buf() }, events))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_all(conn: &Connection) -> Result<Vec<Event>, String> {
    let mut stmt = conn.prepare("SELECT seq, body FROM events ORDER BY seq").map_err(|e| e.to_string())?;
    let rows =
        stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, body) = row.map_err(|e| e.to_string())?;
        events.push(serde_json::from_str(&body).map_err(|e| format!("event {seq} is unreadable: {e}"))?);
    }
    Ok(events)
}

fn write_loop(mut conn: Connection, rx: &mpsc::Receiver<Append>, stats: &LedgerStats) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = write(&mut conn, &batch);
        stats.commit_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.appends.fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.events.fetch_add(batch.iter().map(|a| a.events.len() as u64).sum(), Ordering::Relaxed);
        let failed = result.is_err();
        for append in batch {
            let _ = append.done.send(result.clone());
        }
        if failed {
            // Stop: every later append is refused (its sender sees the channel closed).
            return;
        }
    }
}

fn write(conn: &mut Connection, batch: &[Append]) -> Result<(), LedgerError> {
    let err = |e: rusqlite::Error| LedgerError::Write(e.to_string());
    let tx = conn.transaction().map_err(err)?;
    {
        let mut insert = tx.prepare_cached("INSERT INTO events (body) VALUES (?1)").map_err(err)?;
        for event in batch.iter().flat_map(|a| &a.events) {
            let body = serde_json::to_string(event).map_err(|e| LedgerError::Write(e.to_string()))?;
            insert.execute([body]).map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

impl Ledger for SqliteLedger {
    fn append(&self, events: Vec<Event>) -> BoxFuture<'static, Result<(), LedgerError>> {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Append { events, done });
        async move {
            sent.map_err(|_| LedgerError::Write("the ledger writer has stopped".into()))?;
            wait.await.map_err(|_| LedgerError::Write("the ledger writer has stopped".into()))?
        }
        .boxed()
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
            user: format!("u{claim}"),
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
        };
        {
            let (ledger, existing) = SqliteLedger::open(&path).expect("open");
            assert!(existing.is_empty());
            ledger.append(vec![Event::InventoryCreated(spec.clone())]).await.expect("append");
            let appends: Vec<_> = (0..100).map(|i| ledger.append(vec![claimed(i)])).collect();
            for a in futures_util::future::join_all(appends).await {
                a.expect("durable");
            }
            ledger.append(Vec::new()).await.expect("barrier");
            assert!(ledger.stats.commits.load(Ordering::Relaxed) <= 102);
        }
        let (_, events) = SqliteLedger::open(&path).expect("reopen");
        assert_eq!(events.len(), 101);
        assert_eq!(events[0], Event::InventoryCreated(spec));
        assert_eq!(events[100], claimed(99));
    }
}
