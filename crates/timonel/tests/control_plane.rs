//! End-to-end tests of the control plane: the real `kubectl` v1.35 against `timonel server`
//! running its scheduler and controllers, on simulated nodes (`timonel sim-nodes`).
//!
//! Each test starts its own cluster (`Cluster::start(ClusterConfig::control_plane())`) and its
//! own simulated nodes, so node deaths, cordons and drains never reach another test. Fetch the
//! tools first with `scripts/fetch-kube-tools.sh`; run one file with
//! `cargo test -p timonel --test control_plane cp::deployments::`.

#[allow(dead_code)]
mod e2e {
    pub mod harness;
}

mod cp {
    pub mod deployments;
    pub mod disruption;
    pub mod jobs;
    pub mod nodes;
    pub mod workloads;
}
