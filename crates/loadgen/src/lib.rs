//! `spillway spike`'s engine: an open-model load generator that rehearses a surge. Users arrive on a
//! schedule (`arrival`), each runs a journey (`journey`) through a bounded connection pool (`client`), and
//! the run ends in a report with latency percentiles, a timeline, the waiting room's fairness and the
//! reservation engine's overselling check (`report`, `html`). No argument parsing here: the CLI and
//! `spillway demo` build a `Scenario` and call `Spike::run`.

pub mod arrival;
mod client;
pub mod cookies;
mod error;
pub mod fairness;
pub mod histogram;
pub mod html;
mod journey;
mod live;
mod pool;
pub mod progress;
mod record;
pub mod report;
pub mod retry;
mod runner;
pub mod scenario;
mod svg;

pub use arrival::{Arrival, Step};
pub use client::Failure;
pub use error::{Invalid, LoadgenError};
pub use journey::surge::{Outcome, UserRecord};
pub use live::{Live, Snapshot};
pub use record::Second;
pub use report::Report;
pub use retry::Retry;
pub use runner::Spike;
pub use scenario::{Journey, Scenario};
