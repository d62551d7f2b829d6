//! Kubernetes resource registry, defaulting, validation, selectors, tables and Status errors.
//!
//! Everything here is pure: no IO, no clock except where a caller passes `now`.

pub mod cron;
pub mod defaults;
pub mod registry;
pub mod selectors;
pub mod status;
pub mod table;
pub mod validation;
