//! The node's image store: content-addressed blobs, images imported from OCI layout and
//! `docker save` archives or pulled from registries (mirrors and auth as k3s's
//! `registries.yaml` and imagePullSecrets configure them), layers unpacked once for
//! overlayfs, and kubelet-style GC.

mod archive;
mod credentials;
mod digest;
mod error;
pub mod gc;
mod pull;
mod reference;
pub mod registries;
pub mod spec;
mod store;
pub mod unpack;

pub use archive::ImportOptions;
pub use credentials::{RegistryCredential, credentials_from_docker_config, matching_credentials};
pub use digest::Digest;
pub use error::{ImageError, PullErrorKind, Result};
pub use gc::{DiskUsage, GcPolicy, ImageUsage, images_to_remove};
pub use pull::{PullOutcome, PullProgress, pull, pulled_event_message, pulling_event_message};
pub use reference::Reference;
pub use registries::{Endpoint, RegistriesConfig};
pub use spec::{ConfigFile, Descriptor, ImageConfig, Index, Manifest, Platform};
pub use store::{BlobWriter, ImageRecord, ImageStore, LayerRecord, StoreLock};
