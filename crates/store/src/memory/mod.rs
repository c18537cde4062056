//! The embedded backend: state in this process, for one node.

mod limit;
mod room;

pub use limit::MemoryLimiter;
pub use room::MemoryRoom;
