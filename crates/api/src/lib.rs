//! Kubernetes resource registry, defaulting, validation, selectors, tables and Status errors.
//!
//! Everything here is pure: no IO, no clock except where a caller passes `now`.

pub mod registry;
pub mod status;
pub mod defaults;
pub mod validation;
pub mod table;
pub mod selectors;
