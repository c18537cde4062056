//! Spillway's durable claims against what a user would otherwise pick for a first-come-first-served drop:
//! a hot row in PostgreSQL, and the classic Lua "seckill" script in Redis. All three run in the same process,
//! on the same machine, in the same run.
//!
//!     cargo bench -p spillway-reserve --bench peers
//!
//! PostgreSQL (127.0.0.1:5432, user `postgres`, database `test`) and Redis (127.0.0.1:6379) must be running:
//! if either cannot be reached the bench fails with a message; it does not skip.
//!
//! # The job, the same for all three
//!
//! One item with a stock of `S` (200,000), one claim per user. Phase 1 sends claims from distinct users, all of
//! which must succeed, until `S` are done or 10 s have passed, and reports claims/s. The stock is then gone
//! (whatever phase 1 left is removed outside the clock: a direct write for PostgreSQL and Redis, claims by
//! fresh users for Spillway). Phase 2 sends claims after the sell-out, alternately from a user who already
//! holds one (a duplicate) and from a new user (sold out), until 1,000,000 are done or 10 s have passed, and
//! reports rejections/s. Both phases are run with `N` = 64 and then `N` = 16 concurrent claimants: tokio tasks
//! on one multi-threaded runtime (2 workers on a 2-core machine), each sending its next claim as soon as the
//! previous one is answered. A claim counts once its answer is back; a wrong answer (an oversell, a lost
//! claim) stops the bench, and the books of each system are checked after each phase (stock left + claims
//! recorded = `S`, one claim per user).
//!
//! # What each acknowledgement guarantees
//!
//! - **Spillway** (`Reservations` in process, ledger in a temp dir on the same disk as the databases): the
//!   decision is made in memory under one lock, and the answer waits until the claim's event is committed to
//!   SQLite in WAL mode with `synchronous=FULL` (fsync), many claims per commit (group commit). A rejection
//!   also waits for everything decided before it to be durable. Acknowledged = on disk.
//! - **PostgreSQL**: one transaction per claim over `N` connections (tokio-postgres, one connection per
//!   claimant, prepared statements): `UPDATE stock SET remaining = remaining - 1 WHERE id = $1 AND remaining >
//!   0`, then, if a row changed, `INSERT INTO claims(user_id)` (a unique violation is a duplicate), `COMMIT`.
//!   With the server's `fsync` and `synchronous_commit` on (printed; the bench says so if they are off),
//!   COMMIT returns once the WAL is flushed: acknowledged = on disk. A sold-out or duplicate claim rolls back.
//! - **Redis**: one Lua script per claim (`EVALSHA`, loaded before the clock starts): `SISMEMBER` for a
//!   duplicate, decrement the stock if it is above 0, `SADD` the user. Atomic, because Redis runs scripts one
//!   at a time. The `N` claimants share one multiplexed connection (the `redis` crate's recommended async
//!   client, cloned per task; requests from all tasks are pipelined on it). Durability depends entirely on the
//!   server's persistence settings, printed next to its figure: with `appendonly no` and no `save` schedule,
//!   an acknowledged claim lives in memory only and a restart loses every one of them.
//!
//! # Why the comparison is fair, and where it is not
//!
//! Same job, same users, same concurrency, same client runtime, same machine and disk, each system's own
//! answer counted. Each peer is used as its users use it: PostgreSQL's row lock and Redis's single thread give
//! no oversell and one claim per user, as Spillway's engine does. Two things favour Spillway and are not
//! hidden: it runs inside the benchmark process (no socket, no protocol; a deployment adds its HTTP front),
//! while the peers are reached over loopback TCP; and the peers' servers share the 2 cores with the client
//! load generator, which Spillway does too. Redis is not doing the same job in one respect: it keeps nothing
//! on disk here, so its figure is that of an in-memory counter, not of a durable ledger.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spillway_core::reserve::{ClaimError, ClaimRequest, InventorySpec};
use spillway_reserve::{Reservations, ReserveError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stock of the drop, and the most claims phase 1 sends.
const STOCK: u64 = 200_000;
/// The most claims phase 2 sends.
const REJECTIONS: u64 = 1_000_000;
/// Each phase stops here even if its count is not reached.
const TIME_BOUND: Duration = Duration::from_secs(10);
const CLAIMANTS: [usize; 2] = [64, 16];
/// Claimants that sell out Spillway's remaining stock between the phases, off the clock.
const DRAINERS: usize = 1_000;

const PG_CONFIG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";
const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// What a system answered to one claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Claimed,
    SoldOut,
    Duplicate,
}

/// The user of phase 1's claim `i`.
fn buyer(i: u64) -> String {
    format!("u{i}")
}

/// The user of phase 2's claim `j`: every other one already holds a claim (from phase 1's `claimed`), the rest
/// are new (numbered past anything phase 1 used).
fn late_user(j: u64, claimed: u64) -> String {
    if j.is_multiple_of(2) { format!("u{}", (j / 2) % claimed) } else { format!("u{}", 10 * STOCK + j) }
}

#[derive(Debug, Default, Clone, Copy)]
struct Phase {
    done: u64,
    seconds: f64,
    sold_out: u64,
    duplicates: u64,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.done as f64 / self.seconds
    }
}

#[derive(Debug, Clone)]
struct Figures {
    claims: Phase,
    rejections: Phase,
    /// Anything more the system tells about the run.
    note: String,
}

/// Runs one phase: one task per `state` (a connection, a handle), each taking the next claim number until
/// `cap` or `bound`, and sending it with `claim`, which hands the state back with the answer.
/// In phase 1 (`accept`) every answer must be `Claimed`; in phase 2 none may be.
async fn run_phase<S, F, Fut>(
    states: Vec<S>,
    cap: u64,
    bound: Duration,
    accept: bool,
    claim: F,
) -> Result<Phase, BoxError>
where
    S: Send + 'static,
    F: Fn(S, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<Outcome, BoxError>)> + Send + 'static,
{
    let claim = Arc::new(claim);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + bound;
    let tasks: Vec<_> = states
        .into_iter()
        .map(|state| {
            let (claim, next) = (claim.clone(), next.clone());
            tokio::spawn(async move {
                let mut state = state;
                let mut tally = Phase::default();
                loop {
                    // The clock is read before a number is taken, so every number taken is sent: phase 1's
                    // users are exactly u0..u(done-1).
                    if Instant::now() >= deadline {
                        return Ok::<_, BoxError>(tally);
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= cap {
                        return Ok(tally);
                    }
                    let (back, outcome) = claim(state, i).await;
                    state = back;
                    match (accept, outcome?) {
                        (true, Outcome::Claimed) => {}
                        (false, Outcome::SoldOut) => tally.sold_out += 1,
                        (false, Outcome::Duplicate) => tally.duplicates += 1,
                        (_, wrong) => {
                            return Err(format!(
                                "claim {i}: answered {wrong:?} in phase {}",
                                if accept { 1 } else { 2 }
                            )
                            .into());
                        }
                    }
                    tally.done += 1;
                }
            })
        })
        .collect();
    let mut total = Phase::default();
    for task in tasks {
        let tally = task.await??;
        total.done += tally.done;
        total.sold_out += tally.sold_out;
        total.duplicates += tally.duplicates;
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

// === Spillway ===

fn spec() -> InventorySpec {
    InventorySpec::counted("drop", STOCK)
}

fn request(user: String, key: &str) -> ClaimRequest {
    ClaimRequest {
        inventory: "drop".into(),
        user,
        quantity: 1,
        units: Vec::new(),
        hold: Some(false),
        idempotency_key: key.into(),
    }
}

async fn spillway_claim(service: &Reservations, req: &ClaimRequest) -> Result<Outcome, BoxError> {
    match service.claim(req, 0).await {
        Ok(reply) if !reply.replayed => Ok(Outcome::Claimed),
        Ok(_) => Err("a replayed answer: the bench reused an idempotency key".into()),
        Err(ReserveError::Claim(ClaimError::SoldOut)) => Ok(Outcome::SoldOut),
        Err(ReserveError::Claim(ClaimError::LimitReached(_))) => Ok(Outcome::Duplicate),
        Err(e) => Err(e.into()),
    }
}

async fn spillway(claimants: usize) -> Result<Figures, BoxError> {
    let dir = tempfile::tempdir()?;
    let (service, stats) = Reservations::open(&spillway_store::Embedded::new(), &dir.path().join("ledger.db"))?;
    let service = Arc::new(service);
    service.create_inventory(spec()).await?;
    let commits_before = stats.commits.load(Ordering::Relaxed);
    let micros_before = stats.commit_micros.load(Ordering::Relaxed);

    let claims = run_phase(vec![service.clone(); claimants], STOCK, TIME_BOUND, true, |service, i| async move {
        let outcome = spillway_claim(&service, &request(buyer(i), "k")).await;
        (service, outcome)
    })
    .await?;
    let commits = stats.commits.load(Ordering::Relaxed) - commits_before;
    let (_, counts) = service.inventory("drop").ok_or("the inventory is gone")?;
    if counts.taken != claims.done {
        return Err(
            format!("spillway books after phase 1: {} taken, {} acknowledged", counts.taken, claims.done).into()
        );
    }
    let commit_micros = stats.commit_micros.load(Ordering::Relaxed) - micros_before;
    // Sell out whatever the clock left, off the clock, with many claimants so that it takes little time.
    let left = STOCK - claims.done;
    run_phase(vec![service.clone(); DRAINERS], left, Duration::from_secs(600), true, |service, i| async move {
        let outcome = spillway_claim(&service, &request(buyer(STOCK + i), "k")).await;
        (service, outcome)
    })
    .await?;

    let claimed = claims.done;
    let rejections =
        run_phase(vec![service.clone(); claimants], REJECTIONS, TIME_BOUND, false, move |service, j| async move {
            let outcome = spillway_claim(&service, &request(late_user(j, claimed), "late")).await;
            (service, outcome)
        })
        .await?;

    let (_, counts) = service.inventory("drop").ok_or("the inventory is gone")?;
    if counts.taken != STOCK || counts.remaining() != 0 {
        return Err(format!("spillway books after phase 2: {} taken, {} left", counts.taken, counts.remaining()).into());
    }
    service.check_invariants()?;
    let note = format!(
        "phase 1: {:.1} claims per commit, {:.2} ms per commit (fsync included)",
        claims.done as f64 / commits.max(1) as f64,
        commit_micros as f64 / 1000.0 / commits.max(1) as f64
    );
    Ok(Figures { claims, rejections, note })
}

// === PostgreSQL ===

struct Pg {
    client: tokio_postgres::Client,
    update: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
}

async fn pg_connect() -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(PG_CONFIG, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn pg_claim(pg: &mut Pg, user: &str) -> Result<Outcome, tokio_postgres::Error> {
    let tx = pg.client.transaction().await?;
    if tx.execute(&pg.update, &[&1_i32]).await? == 0 {
        tx.rollback().await?;
        return Ok(Outcome::SoldOut);
    }
    match tx.execute(&pg.insert, &[&user]).await {
        Ok(_) => {
            tx.commit().await?;
            Ok(Outcome::Claimed)
        }
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            tx.rollback().await?;
            Ok(Outcome::Duplicate)
        }
        Err(e) => Err(e),
    }
}

/// The server's durability settings, and what they mean for an acknowledged claim.
async fn pg_durability(admin: &tokio_postgres::Client) -> Result<String, BoxError> {
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit", "wal_sync_method"] {
        let row = admin.query_one(&format!("SHOW {name}"), &[]).await?;
        settings.push(row.get::<_, String>(0));
    }
    let (fsync, sync_commit, method) = (&settings[0], &settings[1], &settings[2]);
    let verdict = if fsync == "on" && sync_commit == "on" {
        "durable: COMMIT waits for the WAL flush"
    } else {
        "NOT DURABLE: fsync or synchronous_commit is off, acknowledged claims can be lost"
    };
    Ok(format!("fsync={fsync} synchronous_commit={sync_commit} wal_sync_method={method}: {verdict}"))
}

async fn postgres(admin: &tokio_postgres::Client, names: &PgNames, claimants: usize) -> Result<Figures, BoxError> {
    let PgNames { stock, claims: claims_table } = names;
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {stock}, {claims_table};
             CREATE TABLE {stock}(id int PRIMARY KEY, remaining int NOT NULL);
             CREATE TABLE {claims_table}(id bigserial PRIMARY KEY, user_id text NOT NULL UNIQUE);
             INSERT INTO {stock} VALUES (1, {STOCK});"
        ))
        .await?;
    let mut states = Vec::with_capacity(claimants);
    for _ in 0..claimants {
        let client = pg_connect().await?;
        let update = client
            .prepare(&format!("UPDATE {stock} SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0"))
            .await?;
        let insert = client.prepare(&format!("INSERT INTO {claims_table}(user_id) VALUES ($1)")).await?;
        states.push(Pg { client, update, insert });
    }

    let claims = run_phase(states, STOCK, TIME_BOUND, true, |mut pg, i| async move {
        let outcome = pg_claim(&mut pg, &buyer(i)).await.map_err(BoxError::from);
        (pg, outcome)
    })
    .await?;
    let books_query = format!("SELECT (SELECT remaining FROM {stock})::bigint, (SELECT count(*) FROM {claims_table})");
    let books = async |admin: &tokio_postgres::Client| {
        admin.query_one(&books_query, &[]).await.map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
    };
    let (left, recorded) = books(admin).await?;
    if left as u64 + claims.done != STOCK || recorded as u64 != claims.done {
        return Err(format!(
            "postgres books after phase 1: {left} left, {recorded} recorded, {} acknowledged",
            claims.done
        )
        .into());
    }
    // Sell out what the clock left, off the clock.
    admin.execute(&format!("UPDATE {stock} SET remaining = 0"), &[]).await?;

    let mut states = Vec::with_capacity(claimants);
    // Reconnecting keeps phase 2 independent of phase 1's connections; same settings.
    for _ in 0..claimants {
        let client = pg_connect().await?;
        let update = client
            .prepare(&format!("UPDATE {stock} SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0"))
            .await?;
        let insert = client.prepare(&format!("INSERT INTO {claims_table}(user_id) VALUES ($1)")).await?;
        states.push(Pg { client, update, insert });
    }
    let claimed = claims.done;
    let rejections = run_phase(states, REJECTIONS, TIME_BOUND, false, move |mut pg, j| async move {
        let outcome = pg_claim(&mut pg, &late_user(j, claimed)).await.map_err(BoxError::from);
        (pg, outcome)
    })
    .await?;
    let (left, recorded) = books(admin).await?;
    if left != 0 || recorded as u64 != claims.done {
        return Err(format!("postgres books after phase 2: {left} left, {recorded} recorded").into());
    }
    Ok(Figures { claims, rejections, note: String::new() })
}

/// Table names unique to this run.
#[derive(Debug)]
struct PgNames {
    stock: String,
    claims: String,
}

// === Redis ===

/// 1 = claimed, 0 = sold out, -1 = duplicate.
const SECKILL: &str = r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return -1 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left <= 0 then return 0 end
redis.call('DECR', KEYS[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

/// Key names unique to this run.
#[derive(Debug, Clone)]
struct RedisKeys {
    stock: String,
    claimed: String,
}

async fn redis_claim(
    con: &mut redis::aio::MultiplexedConnection,
    script: &redis::Script,
    keys: &RedisKeys,
    user: &str,
) -> Result<Outcome, BoxError> {
    let answer: i64 = script.key(&keys.stock).key(&keys.claimed).arg(user).invoke_async(con).await?;
    match answer {
        1 => Ok(Outcome::Claimed),
        0 => Ok(Outcome::SoldOut),
        -1 => Ok(Outcome::Duplicate),
        other => Err(format!("the script answered {other}").into()),
    }
}

async fn redis_durability(con: &mut redis::aio::MultiplexedConnection) -> Result<String, BoxError> {
    let mut get = async |name: &str| -> Result<String, BoxError> {
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg(name).query_async(con).await?;
        Ok(pair.get(1).cloned().unwrap_or_default())
    };
    let appendonly = get("appendonly").await?;
    let appendfsync = get("appendfsync").await?;
    let save = get("save").await?;
    let verdict = match (appendonly.as_str(), appendfsync.as_str(), save.is_empty()) {
        ("yes", "always", _) => "durable: fsync of the AOF before each reply".to_string(),
        ("yes", "everysec", _) => "NOT DURABLE: AOF fsync'd once a second, up to ~1 s of claims lost".to_string(),
        ("yes", _, _) => "NOT DURABLE: AOF written, fsync left to the OS".to_string(),
        ("no", _, true) => "NOT DURABLE: no persistence at all, a restart loses every claim".to_string(),
        _ => format!("NOT DURABLE: snapshots only (save \"{save}\"), claims since the last one are lost"),
    };
    Ok(format!("appendonly={appendonly} appendfsync={appendfsync} save=\"{save}\": {verdict}"))
}

async fn redis_run(
    con: &redis::aio::MultiplexedConnection,
    script: &redis::Script,
    keys: &RedisKeys,
    claimants: usize,
) -> Result<Figures, BoxError> {
    let mut admin = con.clone();
    redis::cmd("DEL").arg(&keys.stock).arg(&keys.claimed).exec_async(&mut admin).await?;
    redis::cmd("SET").arg(&keys.stock).arg(STOCK).exec_async(&mut admin).await?;
    script.load_async(&mut admin).await?;

    let states = || (0..claimants).map(|_| (con.clone(), script.clone(), keys.clone())).collect::<Vec<_>>();
    let claims = run_phase(states(), STOCK, TIME_BOUND, true, |(mut con, script, keys), i| async move {
        let outcome = redis_claim(&mut con, &script, &keys, &buyer(i)).await;
        ((con, script, keys), outcome)
    })
    .await?;
    let books = async |admin: &mut redis::aio::MultiplexedConnection| -> Result<(i64, i64), BoxError> {
        let left: i64 = redis::cmd("GET").arg(&keys.stock).query_async(admin).await?;
        let recorded: i64 = redis::cmd("SCARD").arg(&keys.claimed).query_async(admin).await?;
        Ok((left, recorded))
    };
    let (left, recorded) = books(&mut admin).await?;
    if left as u64 + claims.done != STOCK || recorded as u64 != claims.done {
        return Err(format!(
            "redis books after phase 1: {left} left, {recorded} recorded, {} acknowledged",
            claims.done
        )
        .into());
    }
    // Sell out what the clock left, off the clock.
    redis::cmd("SET").arg(&keys.stock).arg(0).exec_async(&mut admin).await?;

    let claimed = claims.done;
    let rejections = run_phase(states(), REJECTIONS, TIME_BOUND, false, move |(mut con, script, keys), j| async move {
        let outcome = redis_claim(&mut con, &script, &keys, &late_user(j, claimed)).await;
        ((con, script, keys), outcome)
    })
    .await?;
    let (left, recorded) = books(&mut admin).await?;
    if left != 0 || recorded as u64 != claims.done {
        return Err(format!("redis books after phase 2: {left} left, {recorded} recorded").into());
    }
    Ok(Figures { claims, rejections, note: String::new() })
}

// === report ===

fn line(name: &str, f: &Figures, durability: &str) -> String {
    let c = &f.claims;
    let r = &f.rejections;
    format!(
        "  {name:<10} claims {:>9.0}/s ({} in {:.2} s)   rejections {:>9.0}/s ({} in {:.2} s: {} sold out, {} duplicate)\n  {:<10} durability: {durability}{}{}",
        c.rate(),
        c.done,
        c.seconds,
        r.rate(),
        r.done,
        r.seconds,
        r.sold_out,
        r.duplicates,
        "",
        if f.note.is_empty() { "" } else { "\n             " },
        f.note
    )
}

#[allow(clippy::print_stderr)]
fn unreachable_peer(what: &str, error: &dyn std::fmt::Display) -> ! {
    eprintln!(
        "peers bench: cannot reach {what}: {error}\n\
         This benchmark compares Spillway against PostgreSQL (127.0.0.1:5432, user postgres, database test) and \
         Redis (127.0.0.1:6379); it does not skip a missing peer. Start them and run it again."
    );
    std::process::exit(1);
}

#[allow(clippy::print_stdout)]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let admin = match pg_connect().await {
            Ok(client) => client,
            Err(e) => unreachable_peer("PostgreSQL at 127.0.0.1:5432", &e),
        };
        let redis_client = redis::Client::open(REDIS_URL).expect("redis url");
        let redis_con = match redis_client.get_multiplexed_async_connection().await {
            Ok(con) => con,
            Err(e) => unreachable_peer("Redis at 127.0.0.1:6379", &e),
        };
        let mut redis_admin = redis_con.clone();
        if let Err(e) = redis::cmd("PING").query_async::<String>(&mut redis_admin).await {
            unreachable_peer("Redis at 127.0.0.1:6379", &e);
        }

        let pg_durable = pg_durability(&admin).await.expect("PostgreSQL settings");
        let redis_durable = redis_durability(&mut redis_admin).await.expect("Redis settings");
        let spillway_durable = "durable: SQLite WAL, synchronous=FULL, fsync (group commit) before each answer";

        let pid = std::process::id();
        let names = PgNames { stock: format!("spillway_peers_stock_{pid}"), claims: format!("spillway_peers_claims_{pid}") };
        let keys = RedisKeys { stock: format!("spillway-peers:{pid}:stock"), claimed: format!("spillway-peers:{pid}:claimed") };
        let script = redis::Script::new(SECKILL);

        println!(
            "peers: stock {STOCK}, one claim per user; phase 1 up to {STOCK} claims by distinct users, phase 2 up to \
             {REJECTIONS} claims after the sell-out (half duplicates, half new users); each phase stops after {} s",
            TIME_BOUND.as_secs()
        );
        let mut outcome: Result<(), BoxError> = Ok(());
        for claimants in CLAIMANTS {
            let result: Result<(), BoxError> = async {
                let s = spillway(claimants).await.map_err(|e| format!("spillway: {e}"))?;
                let p = postgres(&admin, &names, claimants).await.map_err(|e| format!("postgres: {e}"))?;
                let r = redis_run(&redis_con, &script, &keys, claimants).await.map_err(|e| format!("redis: {e}"))?;
                println!("N = {claimants} concurrent claimants (PostgreSQL: {claimants} connections; Redis: 1 multiplexed connection)");
                println!("{}", line("spillway", &s, spillway_durable));
                println!("{}", line("postgres", &p, &pg_durable));
                println!("{}", line("redis", &r, &redis_durable));
                println!(
                    "  ratios     Spillway/PG: claims {:.1}x, rejections {:.1}x   Spillway/Redis: claims {:.2}x, rejections {:.2}x (Redis not durable here)",
                    s.claims.rate() / p.claims.rate(),
                    s.rejections.rate() / p.rejections.rate(),
                    s.claims.rate() / r.claims.rate(),
                    s.rejections.rate() / r.rejections.rate(),
                );
                Ok(())
            }
            .await;
            if let Err(e) = result {
                outcome = Err(e);
                break;
            }
        }

        // Leave nothing behind, whatever happened.
        let dropped = admin.batch_execute(&format!("DROP TABLE IF EXISTS {}, {}", names.stock, names.claims)).await;
        let deleted = redis::cmd("DEL").arg(&keys.stock).arg(&keys.claimed).exec_async(&mut redis_admin).await;
        outcome.expect("peers bench");
        dropped.expect("dropping the bench's tables");
        deleted.expect("deleting the bench's keys");
    });
}
