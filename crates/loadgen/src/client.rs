//! The HTTP client: hyper's pooled client with a hard bound on requests in flight, so a rehearsal opens
//! exactly the connections it says it does, and users beyond the bound wait their turn (and that wait counts
//! in their latency, as it would for a real user's browser).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// One answer, read to the end.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// A waiting room holding the user: `503` with the room's JSON status, not a failure of the service.
    pub fn is_room_hold(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
            && self.body.starts_with(b"{")
            && memfind(&self.body, b"\"refresh_after_seconds\"")
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Why an attempt got no answer. The names are the report's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    Connect,
    Timeout,
    Protocol,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Http {
    /// HTTP/2: hyper's client, one multiplexed connection per host.
    h2: Option<Client<HttpConnector, Full<Bytes>>>,
    /// HTTP/1.1: connections driven by the task using them.
    h1: Vec<crate::pool::Pool>,
    in_flight: Semaphore,
    timeout: Duration,
}

impl Http {
    /// `workers`: the event-loop threads the users run on (their connections are kept apart, so each stays on
    /// the thread whose reactor serves it).
    pub(crate) fn new(connections: usize, http2: bool, timeout: Duration, workers: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let h2 = http2.then(|| {
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).http2_only(true).build(connector)
        });
        Self {
            h2,
            h1: (0..workers.max(1)).map(|_| crate::pool::Pool::default()).collect(),
            in_flight: Semaphore::new(connections),
            timeout,
        }
    }

    /// Sends and reads the whole answer within the timeout. The permit is held until the body is read, so
    /// the connection is back in the pool before another request may start.
    pub(crate) async fn send(&self, key: &str, req: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        let Ok(_permit) = self.in_flight.acquire().await else { return Err(Failure::Protocol) };
        let Some(client) = &self.h2 else {
            return tokio::time::timeout(self.timeout, self.h1[crate::runner::worker() % self.h1.len()].send(key, req))
                .await
                .unwrap_or(Err(Failure::Timeout));
        };
        let exchange = async {
            let response = client
                .request(req)
                .await
                .map_err(|e| if e.is_connect() { Failure::Connect } else { Failure::Protocol })?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|_| Failure::Protocol)?.to_bytes();
            Ok(Answer { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Err(Failure::Timeout))
    }
}
