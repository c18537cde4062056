//! The open-model runner: users start at their scheduled times whether or not the service has answered
//! anyone yet, the way a real crowd does. A closed loop (a fixed set of clients, each waiting for its answer)
//! sends less exactly when the service slows down and so under-reports the slowness (coordinated omission);
//! here a slow service faces the same arrivals and every latency counts from the scheduled start.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::cell::Cell;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Http;
use crate::cookies::Jar;
use crate::journey::surge::{Outcome, Plan, UserRecord};
use crate::journey::{Call, requests, surge};
use crate::record::{Recorder, Shards};
use crate::report::{self, Report, ServerInventory};
use crate::scenario::{Journey, Scenario};
use crate::{Live, LoadgenError};

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The event-loop thread this code runs on (0 on the caller's runtime).
pub(crate) fn worker() -> usize {
    WORKER.with(Cell::get)
}

/// Single-threaded runtimes, one per thread, each driving its own users and their connections from start
/// to end: no task moves between threads and no request wakes another thread, as in the gateway's workers.
/// That is where a load generator spends its CPU, and it shares the machine with what it loads.
#[derive(Debug)]
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(n: usize) -> std::io::Result<Self> {
        let mut w = Self { handles: Vec::new(), stop: Vec::new(), threads: Vec::new() };
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            w.handles.push(rt.handle().clone());
            w.stop.push(stop);
            w.threads.push(std::thread::Builder::new().name(format!("spike-{i}")).spawn(move || {
                WORKER.with(|c| c.set(i));
                let _ = rt.block_on(stopped);
            })?);
        }
        Ok(w)
    }

    fn stop(self) {
        drop(self.stop);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Everything the users share.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub scenario: Scenario,
    pub http: Http,
    pub live: Arc<Live>,
    pub t0: Instant,
    /// Arrivals and request loops stop here.
    pub end: Instant,
    /// Everything stops here.
    pub hard_stop: Instant,
    pub shards: Shards,
    /// Makes idempotency keys unique to this run, so a second rehearsal against the same ledger claims afresh.
    pub run_id: String,
    pub users: Mutex<Vec<UserRecord>>,
    /// One admitted user's cookies, to read the inventory through the room after the run.
    jar: Mutex<Option<Jar>>,
    /// The run's randomness (retry jitter), from the seed it was given or from the system.
    rng: Mutex<fastrand::Rng>,
}

impl Ctx {
    /// Uniform in `[0, 1)`, from the run's generator.
    pub fn random(&self) -> f64 {
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).f64()
    }
}

impl Ctx {
    pub fn second(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.t0).as_secs()).unwrap_or(u32::MAX)
    }

    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64() * 1000.0
    }

    pub fn keep_jar(&self, jar: &Jar) {
        let mut kept = self.jar.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none() {
            *kept = Some(jar.clone());
        }
    }
}

/// What every user runs, prepared once.
#[derive(Debug, Clone)]
enum Prepared {
    Requests { call: Call, count: u64, until_end: bool },
    Surge(Plan),
}

/// One rehearsal. Build it, optionally show `live()` while it runs, then `run` it.
#[derive(Debug)]
pub struct Spike {
    scenario: Scenario,
    live: Arc<Live>,
    threads: usize,
    seed: Option<u64>,
}

impl Spike {
    pub fn new(scenario: Scenario) -> Result<Self, LoadgenError> {
        scenario.validate()?;
        Ok(Self { scenario, live: Arc::new(Live::default()), threads: 0, seed: None })
    }

    /// Draws the run's randomness (its id, retry jitter) from `seed`, so two runs jitter alike; without
    /// it, from the system.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs the users on `n` threads of their own, one event loop each, instead of on the caller's runtime
    /// (`0`, the default). The caller's runtime then only starts users on schedule.
    #[must_use]
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Counters updated while the run goes on (for `progress::spawn_stderr` or a dashboard).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Runs the whole rehearsal and returns its report. Bounded: no user starts after `duration` and nothing
    /// runs past `duration + grace`.
    pub async fn run(self) -> Result<Report, LoadgenError> {
        let scenario = self.scenario;
        let prepared = match &scenario.journey {
            Journey::Requests { url, method, body, headers, requests_per_user, until_end } => Prepared::Requests {
                call: requests::call(url, method, body.as_ref(), headers)?,
                count: *requests_per_user,
                until_end: *until_end,
            },
            Journey::Surge { url, room, reserve, inventory, confirm } => Prepared::Surge(
                Plan::new(url, room, reserve, inventory, *confirm)
                    .ok_or_else(|| LoadgenError::invalid("journey", "cannot build the room and reservation URLs"))?,
            ),
        };
        let schedule = scenario.schedule();
        let started_at_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let t0 = Instant::now();
        let end = t0 + scenario.window();
        let hard_stop = end + scenario.grace.get();
        let workers = if self.threads > 0 {
            Some(Workers::start(self.threads).map_err(|e| LoadgenError::Runtime(e.to_string()))?)
        } else {
            None
        };
        let http = Http::new(scenario.connections, scenario.http2, scenario.timeout.get(), self.threads);
        let mut rng = self.seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        let ctx = Arc::new(Ctx {
            http,
            live: self.live,
            t0,
            end,
            hard_stop,
            shards: Shards::new(16),
            run_id: format!("spike-{started_at_unix_ms:x}-{:08x}", rng.u32(..)),
            users: Mutex::new(Vec::new()),
            jar: Mutex::new(None),
            rng: Mutex::new(rng),
            scenario,
        });
        let prepared = Arc::new(prepared);

        let mut tasks = JoinSet::new();
        let mut elsewhere = Vec::new();
        let mut dispatched = 0u64;
        for (id, offset) in schedule.iter().enumerate() {
            let at = t0 + *offset;
            if at >= hard_stop {
                break;
            }
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            let (ctx, prepared) = (ctx.clone(), prepared.clone());
            ctx.live.users_started.fetch_add(1, Relaxed);
            let job = async move { user(&ctx, &prepared, id, at).await };
            match &workers {
                Some(w) => elsewhere.push(w.handles[id % w.handles.len()].spawn(job)),
                None => {
                    tasks.spawn(job);
                }
            }
            dispatched += 1;
            // Reap finished users now and then, so a long run does not keep every finished task around.
            if dispatched.is_multiple_of(1024) {
                while tasks.try_join_next().is_some() {}
            }
        }
        let mut finished = 0u64;
        let mut unfinished = 0u64;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(true) => finished += 1,
                _ => unfinished += 1,
            }
        }
        for handle in elsewhere {
            match handle.await {
                Ok(true) => finished += 1,
                _ => unfinished += 1,
            }
        }
        if let Some(w) = workers {
            w.stop();
        }
        let elapsed = t0.elapsed();
        let inventory = match prepared.as_ref() {
            Prepared::Surge(plan) => server_inventory(&ctx, plan).await,
            Prepared::Requests { .. } => None,
        };
        let tally = ctx.shards.merged();
        let users = std::mem::take(&mut *ctx.users.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(report::build(report::Inputs {
            scenario: &ctx.scenario,
            started_at_unix_ms,
            elapsed,
            scheduled: schedule.len() as u64,
            started: dispatched,
            finished,
            unfinished,
            tally,
            users: matches!(prepared.as_ref(), Prepared::Surge(_)).then_some(users),
            inventory,
        }))
    }
}

/// One user, start to end. True when its journey finished before the hard stop.
async fn user(ctx: &Ctx, prepared: &Prepared, id: usize, at: Instant) -> bool {
    let mut rec = Recorder::new(&ctx.shards, id);
    let finished = match prepared {
        Prepared::Requests { call, count, until_end } => {
            tokio::time::timeout_at(ctx.hard_stop, requests::run(ctx, &mut rec, call, *count, *until_end, at))
                .await
                .is_ok()
        }
        Prepared::Surge(plan) => {
            let mut record = UserRecord::new(id as u64, ctx.ms(at));
            let finished =
                tokio::time::timeout_at(ctx.hard_stop, surge::run(ctx, &mut rec, plan, &mut record, at)).await.is_ok();
            if !finished {
                record.outcome = Outcome::Unfinished;
                if record.waiting {
                    ctx.live.waiting.fetch_sub(1, Relaxed);
                }
            }
            ctx.users.lock().unwrap_or_else(PoisonError::into_inner).push(record);
            finished
        }
    };
    rec.flush();
    ctx.live.users_done.fetch_add(1, Relaxed);
    finished
}

/// The inventory as the server counts it after the run, read through the room with an admitted user's pass.
async fn server_inventory(ctx: &Ctx, plan: &Plan) -> Option<ServerInventory> {
    let jar = ctx.jar.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
    let call = Call::get(plan.inventory.clone());
    let req = call.request(&jar, ctx.scenario.http2);
    let answer = tokio::time::timeout(Duration::from_secs(10), ctx.http.send(&call.key, req)).await.ok()?.ok()?;
    if !answer.status.is_success() {
        return None;
    }
    serde_json::from_slice(&answer.body).ok()
}
