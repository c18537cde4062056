//! The embedded backend: state in this process, for one node.

mod room;

pub use room::MemoryRoom;
