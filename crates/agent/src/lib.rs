//! Timonel's node agent (the kubelet): joins the cluster, registers its Node and keeps its
//! Lease, and drives every pod bound to the node to its spec with the native runtime.

pub mod containers;
pub mod env;
pub mod events;
pub mod join;
pub mod node;
pub mod status;
pub mod sync;
pub mod volumes;

/// The Kubernetes version the agent speaks, reported as the kubelet version.
pub const KUBELET_VERSION: &str = "v1.35.0-timonel";
