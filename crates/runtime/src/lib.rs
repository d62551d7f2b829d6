//! Timonel's container runtime. For now: the node's image store ([`image`]), which the node
//! agent uses to import, unpack, list and garbage-collect OCI images without a daemon.

pub mod image;
