//! Spillway's algorithms, with no I/O: each takes the current time as an argument and never reads a clock,
//! opens a socket or draws entropy on its own. The I/O shells around them (the gateway, the stores) stay
//! thin, and these can be tested exhaustively on a manual clock.

pub mod cache;
pub mod limit;
pub mod path;
pub mod reserve;
pub mod room;
pub mod shield;
pub mod token;
