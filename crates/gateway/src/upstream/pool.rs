//! Keep-alive HTTP/1.1 connections to one address, over hyper's own client connections.
//!
//! This replaces hyper-util's legacy `Client`, which was a fifth of the proxy's CPU time per request: it
//! keys one pool by scheme and authority (hashing the authority with SipHash on every checkout and every
//! return), moves a large request future around, and spawns a task per request to put the connection back
//! once it is ready. Here each address owns a short stack of idle connections behind its own lock, and a
//! connection goes back as soon as its response body has ended, on the task that was reading it.
//!
//! A connection's task runs on the runtime that opened it. With [`crate::Workers::Threads`], handing it to a
//! request on another worker would make its every read and write a wake-up across threads, so each worker
//! keeps a stack of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tokio::time::Instant;

use super::connector::Connector;
use crate::body::{BoxError, RequestBody};
use crate::workers;

pub type Sender = SendRequest<RequestBody>;

#[derive(Debug)]
pub struct Pool {
    connector: Connector,
    /// One stack per worker thread (slot 0 for any other thread), most recently used last: reusing the
    /// warmest connection lets the others expire when load drops.
    idle: Box<[Mutex<Vec<Idle>>]>,
    /// Per worker.
    max_idle: usize,
    idle_timeout: Duration,
    reaper_started: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened, so nothing was sent: the request may go to another address.
    Connect(BoxError),
    /// The request may have reached the origin.
    Request(hyper::Error),
}

impl Pool {
    pub fn new(connector: Connector, max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        // More workers than cores would share stacks, which is still correct.
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Arc::new(Self {
            connector,
            idle: (0..=workers).map(|_| Mutex::new(Vec::new())).collect(),
            max_idle,
            idle_timeout,
            reaper_started: AtomicBool::new(false),
        })
    }

    /// Sends the request on an idle connection, or on a new one when none is idle. Returns the response and
    /// the connection, which goes back with [`Pool::put_back`] once the response body has ended.
    ///
    /// A pooled connection the origin has just closed hands the request back unsent; it is then sent on
    /// another connection, as hyper-util's client does.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Sender), SendError> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.connect().await.map_err(SendError::Connect)?, false),
            };
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(SendError::Request(e.into_error())),
                },
            }
        }
    }

    /// Returns a connection whose response has been read to the end.
    pub fn put_back(self: &Arc<Self>, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if !sender.is_ready() {
            // Its connection task has not yet taken in the end of the response (it runs on another worker).
            // Rare; wait for it off the request path rather than hand out a connection that is not ready.
            let pool = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut sender = sender;
                if sender.ready().await.is_ok()
                    && let Some(pool) = pool.upgrade()
                {
                    pool.push(sender);
                }
            });
            return;
        }
        self.push(sender);
    }

    fn push(self: &Arc<Self>, sender: Sender) {
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle { sender, since: Instant::now() });
        }
        drop(idle);
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(self), self.idle_timeout));
        }
    }

    /// The most recently used idle connection that is still open and not past `idle_timeout`. Only ready
    /// connections are put back, so one that is not ready now has been closed by the origin.
    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.lock();
        while let Some(newest) = idle.pop() {
            if newest.since.elapsed() >= self.idle_timeout {
                // Everything below the newest is older still.
                idle.clear();
                return None;
            }
            if newest.sender.is_ready() {
                return Some(newest.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Sender, BoxError> {
        let io = self.connector.connect().await?;
        let (sender, connection) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// This worker's stack.
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        lock(&self.idle[workers::current() % self.idle.len()])
    }
}

fn lock(idle: &Mutex<Vec<Idle>>) -> MutexGuard<'_, Vec<Idle>> {
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Closes connections idle for longer than `idle_timeout`, until the pool is gone.
async fn reap(pool: Weak<Pool>, idle_timeout: Duration) {
    let period = idle_timeout.max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        for idle in &pool.idle {
            lock(idle).retain(|i| i.since.elapsed() < idle_timeout && !i.sender.is_closed());
        }
    }
}
