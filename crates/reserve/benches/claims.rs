//! Claims in process: decisions alone (the state machine), then durable claims through the SQLite ledger with
//! group commit, many concurrent claimants. Targets from the brief: >= 1,000,000 durable claims/s and
//! >= 10,000,000 rejections/s.
//!
//!     cargo bench -p spillway-reserve --bench claims

use std::sync::Arc;
use std::time::Instant;

use spillway_core::reserve::{ClaimRequest, Engine, InventorySpec, Stock};
use spillway_reserve::Reservations;

fn spec(n: u64) -> InventorySpec {
    InventorySpec {
        id: "drop".into(),
        stock: Stock::Counted(n),
        per_user_limit: Some(1),
        hold_ttl_ms: None,
        waitlist: false,
        opens_at: None,
        closes_at: None,
    }
}

fn req(user: u64) -> ClaimRequest {
    ClaimRequest {
        inventory: "drop".into(),
        user: format!("u{user}"),
        quantity: 1,
        units: Vec::new(),
        hold: false,
        idempotency_key: "k".into(),
    }
}

#[allow(clippy::print_stdout)]
fn main() {
    const N: u64 = 1_000_000;
    let requests: Vec<ClaimRequest> = (0..N).map(req).collect();

    let mut engine = Engine::default();
    let _ = engine.create_inventory(spec(N));
    let started = Instant::now();
    for r in &requests {
        let _ = engine.claim(r, 0);
    }
    println!("decisions (accepted, not durable): {:.0}/s", N as f64 / started.elapsed().as_secs_f64());
    let started = Instant::now();
    for r in &requests {
        let _ = engine.claim(&ClaimRequest { idempotency_key: "other".into(), ..r.clone() }, 0);
    }
    println!("rejections (limit_reached / sold_out): {:.0}/s", N as f64 / started.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let (service, stats) = Reservations::open(&dir.path().join("ledger.db")).expect("open");
        let service = Arc::new(service);
        service.create_inventory(spec(N)).await.expect("created");
        const DURABLE: u64 = 200_000;
        const CLAIMANTS: u64 = 1_000;
        let started = Instant::now();
        let tasks: Vec<_> = (0..CLAIMANTS)
            .map(|c| {
                let service = service.clone();
                tokio::spawn(async move {
                    for user in (c..DURABLE).step_by(CLAIMANTS as usize) {
                        let _ = service.claim(&req(user), 0).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let commits = stats.commits.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "durable claims through SQLite (fsync per commit, {CLAIMANTS} concurrent claimants): {:.0}/s, {:.0} claims per commit",
            DURABLE as f64 / elapsed,
            DURABLE as f64 / commits.max(1) as f64
        );
    });
}
