//! Spillway's HTTP gateway: the public listener (HTTP/1.1, HTTP/2, TLS), routing by host and path, the
//! per-route policy pipeline, the reverse proxy to upstreams, and the admin listener.
//!
//! The path of a request: [`server`] accepts it and applies the global limits, the [`router`] picks a route,
//! the route's [`pipeline`] runs its policies in order and ends at a target (the [`proxy`] to an
//! [`upstream`]), and [`error`] turns any failure into the client's JSON or HTML answer.

pub mod access_log;
mod admin;
pub mod body;
pub mod cache;
pub mod client_ip;
pub mod clock;
pub mod component;
mod conn;
pub mod error;
pub mod headers;
pub mod lifecycle;
pub mod limit;
pub mod metrics;
pub mod pipeline;
pub mod proxy;
pub mod reserve;
pub mod room;
pub mod router;
pub mod runtime;
pub mod server;
pub mod shield;
mod tls;
pub mod upstream;
pub mod workers;

pub use clock::{Clock, Entropy};
pub use error::{Accept, GatewayError};
pub use pipeline::{Next, Pipeline, Policy, RequestCtx, Target};
pub use runtime::{Runtime, Services};
pub use server::{Drained, Handle, Start, StartError, start, start_with, start_with_clock, start_with_options};
pub use workers::Workers;

/// Checks everything `serve` would check short of binding sockets: the config builds, certificates load.
pub fn check(config: spillway_config::Config) -> Result<(), spillway_config::ConfigError> {
    Runtime::build(config, &Services::embedded(), None, access_log::AccessLog::off(), false).map(drop)
}
