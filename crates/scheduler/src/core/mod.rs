//! The pure scheduling core: a snapshot and a pod in, a decision out. No IO, no clock.

mod framework;
pub mod quantity;
mod schedule;
pub mod selectors;
mod snapshot;
#[cfg(test)]
mod tests;
pub mod volumes;

pub use framework::NodeStatus;
pub use schedule::{
    FitError, Preemption, filter_nodes, num_feasible_nodes_to_find, preemption_victims, schedule,
};
pub use snapshot::{
    DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, HostPort, NodeInfo, PodInfo, Readiness,
    Resources, Snapshot, occupies_node, pod_requests,
};
