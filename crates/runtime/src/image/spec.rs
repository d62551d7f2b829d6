//! The parts of the OCI image spec (and Docker's v2 schema 2, which has the same shape) that
//! the store reads: index, manifest, descriptors and the image config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// `org.opencontainers.image.ref.name`: a tag (`latest`) or a full reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// What containerd and Docker ≥ 25 write next to it: always the full reference.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// Enough of a blob to tell an index from a manifest when `mediaType` is missing from the
/// descriptor (allowed by the OCI spec).
#[derive(Deserialize)]
pub(crate) struct Sniff {
    #[serde(default, rename = "mediaType")]
    pub media_type: String,
    #[serde(default)]
    pub manifests: Option<serde_json::Value>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// The image configuration file (`application/vnd.oci.image.config.v1+json`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RawRunConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawRunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// What the runtime needs from an image to start a container from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Image ENTRYPOINT; the container's `command` replaces it.
    pub entrypoint: Vec<String>,
    /// Image CMD; the container's `args` replace it (and `command` alone drops it).
    pub cmd: Vec<String>,
    /// `KEY=value` entries, in image order.
    pub env: Vec<String>,
    /// Empty means `/`.
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: String,
    /// `80/tcp`, `53/udp`, …
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub os: String,
    pub architecture: String,
}

impl ImageConfig {
    pub fn from_config_file(file: &ConfigFile) -> Self {
        let run = file.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: run.entrypoint.unwrap_or_default(),
            cmd: run.cmd.unwrap_or_default(),
            env: run.env.unwrap_or_default(),
            working_dir: run.working_dir.unwrap_or_default(),
            user: run.user.unwrap_or_default(),
            exposed_ports: run.exposed_ports.unwrap_or_default().into_keys().collect(),
            labels: run.labels.unwrap_or_default(),
            stop_signal: run.stop_signal.filter(|s| !s.is_empty()),
            os: file.os.clone(),
            architecture: file.architecture.clone(),
        }
    }
}

/// The platform name images use for this machine (`GOARCH` spelling).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

/// The entry of an index for this machine (linux on [`host_architecture`]), or the only
/// entry when it declares no platform. Variants are not compared: images rarely publish two
/// variants of the architectures Timonel runs on.
pub fn select_platform(index: &Index) -> Option<&Descriptor> {
    let arch = host_architecture();
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .or_else(|| match index.manifests.as_slice() {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_image_config() {
        let json = r#"{
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
                "Env": ["PATH=/usr/bin:/bin", "NGINX_VERSION=1.27"], "WorkingDir": "/srv",
                "User": "101:101", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "StopSignal": "SIGQUIT", "Labels": {"maintainer": "x"}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}
        }"#;
        let file: ConfigFile = serde_json::from_str(json).unwrap();
        let config = ImageConfig::from_config_file(&file);
        assert_eq!(config.entrypoint, ["/docker-entrypoint.sh"]);
        assert_eq!(config.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(config.env, ["PATH=/usr/bin:/bin", "NGINX_VERSION=1.27"]);
        assert_eq!(config.working_dir, "/srv");
        assert_eq!(config.user, "101:101");
        assert_eq!(config.exposed_ports, ["443/tcp", "80/tcp"]);
        assert_eq!(config.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(file.rootfs.unwrap().diff_ids.len(), 1);
    }

    #[test]
    fn config_without_run_section() {
        let file: ConfigFile =
            serde_json::from_str(r#"{"architecture":"arm64","os":"linux","config":null}"#).unwrap();
        let config = ImageConfig::from_config_file(&file);
        assert!(config.entrypoint.is_empty() && config.cmd.is_empty());
        assert_eq!(config.architecture, "arm64");
    }
}
