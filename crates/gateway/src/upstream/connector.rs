//! Opening connections to one address, counted so the pool can be watched from `/metrics`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::body::BoxError;

#[derive(Debug, Clone)]
pub struct Connector {
    inner: HttpConnector,
    /// `http://host:port/`, what `HttpConnector` dials.
    uri: Uri,
    /// Open connections to this address.
    open: Gauge,
}

impl Connector {
    pub fn new(uri: Uri, connect_timeout: Duration, open: Gauge) -> Self {
        let mut inner = HttpConnector::new();
        inner.set_connect_timeout(Some(connect_timeout));
        inner.set_nodelay(true);
        inner.set_keepalive(Some(Duration::from_secs(60)));
        Self { inner, uri, open }
    }

    /// A new TCP connection; the error keeps `HttpConnector`'s cause chain (refused, timed out, ...).
    pub async fn connect(&self) -> Result<Counted, BoxError> {
        let io = self.inner.clone().call(self.uri.clone()).await?;
        Ok(Counted { io, _open: Open::new(self.open.clone()) })
    }
}

/// An upstream connection; the gauge drops with it.
#[derive(Debug)]
pub struct Counted {
    io: TokioIo<TcpStream>,
    _open: Open,
}

#[derive(Debug)]
struct Open(Gauge);

impl Open {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Read for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
