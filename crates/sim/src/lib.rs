//! A deterministic simulation of a Spillway cluster (after TigerBeetle's VOPR): one seed drives N gateway
//! nodes, each running the real room and limit policies and, on the first node, the real reservation
//! engine, over a simulated shared store ([`store`]) with the faults a network and a machine add. Clients
//! arrive on a schedule from the load generator and poll through whichever node the balancer picks.
//!
//! Faults: replies lost after the store applied the call, store outages, requests from many clients
//! arriving in any order, nodes restarted and reloaded, the ledger's node crashed and its state rebuilt by
//! replay, and a clock skew of up to two seconds on every node.
//!
//! After every step it checks what the product promises (see [`check`]): nothing oversold, the per-user
//! limit, one claim per idempotency key, the active cap, admissions within the rate across all nodes, no
//! client let in ahead of one who joined earlier, each client's rate limit across nodes, and the same state
//! after a replay. A failure names its seed: `SEED=… cargo test -p spillway-sim` replays it exactly.

mod check;
mod client;
pub mod store;
mod world;

pub use world::{Bug, Failure, Options, Report, run};
