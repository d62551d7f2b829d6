//! Timonel's container runtime: the node's image store ([`image`]), container log files in
//! the CRI format ([`log`]) and the native runtime ([`native`]) that runs OCI containers with
//! youki's libcontainer through a per-container shim process.

pub mod image;
pub mod log;
pub mod native;
