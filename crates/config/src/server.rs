use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ByteSize, Seconds, Secret};

/// The public and admin listeners and the limits every request meets before any route sees it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener: where clients connect.
    pub listen: SocketAddr,
    /// Admin listener: metrics, health and the admin API. Keep it off the public network.
    pub admin_listen: SocketAddr,
    /// Bearer token the admin listener requires (all but `/healthz`).
    pub admin_token: Option<Secret>,
    /// Serve TLS on the public listener, with HTTP/2 offered by ALPN.
    pub tls: Option<TlsConfig>,
    /// Accept HTTP/2 (ALPN on TLS, prior knowledge on plaintext) besides HTTP/1.1.
    pub http2: bool,
    /// Request line plus headers larger than this get 431.
    pub max_header_bytes: ByteSize,
    /// Request bodies larger than this get 413, whether announced by Content-Length or found while streaming.
    pub max_body_bytes: ByteSize,
    /// A client must finish sending request headers (and the TLS handshake) within this.
    pub header_read_timeout: Seconds,
    /// How long in-flight requests may take to finish after SIGTERM before the process exits anyway.
    pub shutdown_grace: Seconds,
    /// Proxies in front of Spillway whose `X-Forwarded-For` / `Forwarded` are believed when finding the
    /// client's address (for rate-limit keys and allow/deny lists). Nobody's by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<crate::Cidr>,
    /// The header the trusted proxies write: `x-forwarded-for` or `forwarded`. Only that one is read, since a
    /// client can send the other itself.
    pub forwarded_header: ForwardedHeader,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            admin_token: None,
            tls: None,
            http2: true,
            max_header_bytes: ByteSize::kib(16),
            max_body_bytes: ByteSize::mib(10),
            header_read_timeout: Seconds::secs(10),
            shutdown_grace: Seconds::secs(30),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

/// PEM files for the public listener. Paths are relative to the config file; both are re-read on reload, so
/// a renewed certificate is picked up with SIGHUP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}
