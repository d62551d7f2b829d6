//! Timonel's container runtime: the node's image store ([`image`]) and the native runtime ([`native`]) that runs OCI containers with
//! youki's libcontainer through a per-container shim process.

pub mod image;
pub mod native;
