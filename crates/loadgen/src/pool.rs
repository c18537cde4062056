//! HTTP/1.1 connections for the load generator, each driven by the user task that is using it. hyper's
//! pooled client runs every connection as a task of its own and hands requests and answers across a
//! channel, which costs a wake-up (often on the other core) per request; a load generator that must keep up
//! with wrk cannot afford that. Here a user takes an idle connection, polls it itself while its request is
//! under way, and puts it back, so one request is one task's work.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{Connection, SendRequest, handshake};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::{Answer, Failure};

type Io = TokioIo<TcpStream>;

#[derive(Debug)]
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Pin<Box<Connection<Io, Full<Bytes>>>>,
    /// The driver has finished (the server closed): it must not be polled again, nor the connection reused.
    closed: bool,
}

/// Why an exchange failed: `Stale` when a reused connection turned out closed before any answer, which is
/// worth one more try on a fresh connection (the server closed an idle keep-alive connection).
enum ExchangeError {
    Stale,
    Failed(Failure),
}

impl Conn {
    async fn open(authority: &str) -> Result<Self, Failure> {
        let stream = TcpStream::connect(authority).await.map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, driver) = handshake(TokioIo::new(stream)).await.map_err(|_| Failure::Connect)?;
        Ok(Self { sender, driver: Box::pin(driver), closed: false })
    }

    /// Runs `fut` while driving the connection, so the request and the answer make progress in this task.
    async fn drive<F: Future>(&mut self, fut: F) -> Result<F::Output, ()> {
        let mut fut = pin!(fut);
        let (driver, closed) = (&mut self.driver, &mut self.closed);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            if !*closed && driver.as_mut().poll(cx).is_ready() {
                *closed = true;
                // The answer may still complete from what was already read; look once more.
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                return Poll::Ready(Err(()));
            }
            Poll::Pending
        })
        .await
    }

    async fn exchange(&mut self, req: Request<Full<Bytes>>, reused: bool) -> Result<Answer, ExchangeError> {
        let stale = if reused { ExchangeError::Stale } else { ExchangeError::Failed(Failure::Protocol) };
        if self.closed {
            return Err(stale);
        }
        // Wait until the connection can take a request, driving it meanwhile.
        let ready_result = {
            let (sender, driver, closed) = (&mut self.sender, &mut self.driver, &mut self.closed);
            poll_fn(|cx| {
                if let Poll::Ready(r) = sender.poll_ready(cx) {
                    return Poll::Ready(r.is_ok());
                }
                if !*closed && driver.as_mut().poll(cx).is_ready() {
                    *closed = true;
                    return Poll::Ready(false);
                }
                Poll::Pending
            })
            .await
        };
        if !ready_result {
            return Err(stale);
        }
        let response = self.sender.send_request(req);
        let response = match self.drive(response).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if reused && (e.is_canceled() || e.is_incomplete_message() || e.is_closed()) => {
                return Err(ExchangeError::Stale);
            }
            Ok(Err(_)) | Err(()) => return Err(stale_or(reused, Failure::Protocol)),
        };
        let (parts, body) = response.into_parts();
        let body = match self.drive(body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            _ => return Err(ExchangeError::Failed(Failure::Protocol)),
        };
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

fn stale_or(reused: bool, f: Failure) -> ExchangeError {
    if reused { ExchangeError::Stale } else { ExchangeError::Failed(f) }
}

/// Idle connections by `host:port`. The caller bounds how many are in use at once.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

impl Pool {
    fn take(&self, key: &str) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).get_mut(key).and_then(Vec::pop)
    }

    fn put(&self, key: &str, conn: Conn) {
        if conn.closed {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.get_mut(key) {
            Some(list) => list.push(conn),
            None => {
                idle.insert(key.to_string(), vec![conn]);
            }
        }
    }

    /// Sends on an idle connection to `key` (`host:port`) if there is one (once more on a fresh one if it
    /// was stale), else on a new one. The request is in origin form, with its `Host` header.
    pub(crate) async fn send(&self, key: &str, req: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        if let Some(mut conn) = self.take(key) {
            let (parts, body) = req.into_parts();
            let copy = Request::from_parts(parts.clone(), body.clone());
            let req = Request::from_parts(parts, body);
            match conn.exchange(req, true).await {
                Ok(answer) => {
                    self.put(key, conn);
                    return Ok(answer);
                }
                Err(ExchangeError::Failed(f)) => return Err(f),
                Err(ExchangeError::Stale) => return self.fresh(key, copy).await,
            }
        }
        self.fresh(key, req).await
    }

    async fn fresh(&self, key: &str, req: Request<Full<Bytes>>) -> Result<Answer, Failure> {
        let mut conn = Conn::open(key).await?;
        match conn.exchange(req, false).await {
            Ok(answer) => {
                self.put(key, conn);
                Ok(answer)
            }
            Err(ExchangeError::Failed(f)) => Err(f),
            Err(ExchangeError::Stale) => Err(Failure::Protocol),
        }
    }
}
