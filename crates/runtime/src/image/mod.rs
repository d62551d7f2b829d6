//! The node's image store: content-addressed blobs, images imported from OCI layout and
//! `docker save` archives, layers unpacked once for overlayfs, and kubelet-style GC.

mod archive;
mod digest;
mod error;
pub mod gc;
mod reference;
pub mod spec;
mod store;
pub mod unpack;

pub use archive::ImportOptions;
pub use digest::Digest;
pub use error::{ImageError, Result};
pub use gc::{DiskUsage, GcPolicy, ImageUsage, images_to_remove};
pub use reference::Reference;
pub use spec::{ConfigFile, Descriptor, ImageConfig, Index, Manifest, Platform};
pub use store::{BlobWriter, ImageRecord, ImageStore, LayerRecord, StoreLock};
