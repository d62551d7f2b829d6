//! timonel-scheduler: the default scheduler. `core` is pure; `driver` talks to the API server.

pub mod core;
pub mod driver;

pub use core::{FitError, Snapshot, preemption_victims, schedule};
pub use driver::{SchedulerOptions, run};
