//! Builds layer tarballs and image archives (OCI layout, docker save) in memory.

#![allow(dead_code)]

use std::io::Write;

use serde_json::{Value, json};
use timonel_runtime::image::Digest;

/// Fails (never skips) a test that needs root.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (chown, 0:0 whiteout devices, trusted.overlay xattrs, overlay \
         mounts): run it as root, as CI does"
    );
}

/// A tar built entry by entry, with raw names so tests can write hostile paths.
pub struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl Tar {
    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut header = tar::Header::new_gnu();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.builder.append(&header, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name, tar::EntryType::Directory, "", mode, 0, 0, b"")
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, "", 0o644, 0, 0, data)
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, "", mode, uid, gid, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Symlink, target, 0o777, 0, 0, b"")
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Link, target, 0o644, 0, 0, b"")
    }

    pub fn fifo(&mut self, name: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Fifo, "", 0o600, 0, 0, b"")
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let builder = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        builder.into_inner().unwrap()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn digest(bytes: &[u8]) -> String {
    Digest::of_bytes(bytes).to_string()
}

/// Image config JSON for `layers` (uncompressed tars), with a run config.
pub fn config_json(uncompressed_layers: &[&[u8]], run: Value) -> Vec<u8> {
    let diff_ids: Vec<String> = uncompressed_layers.iter().map(|l| digest(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux", "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An OCI image layout being assembled.
#[derive(Default)]
pub struct Layout {
    pub blobs: Vec<(String, Vec<u8>)>,
    pub index: Vec<Value>,
}

impl Layout {
    pub fn blob(&mut self, bytes: Vec<u8>) -> Value {
        let d = digest(&bytes);
        let size = bytes.len();
        if !self.blobs.iter().any(|(existing, _)| *existing == d) {
            self.blobs.push((d.clone(), bytes));
        }
        json!({"digest": d, "size": size})
    }

    /// Adds config + layers (`(stored bytes, uncompressed bytes, media type)`) and a
    /// manifest; returns the manifest's descriptor (without annotations).
    pub fn image(&mut self, layers: &[(Vec<u8>, Vec<u8>, &str)], run: Value) -> Value {
        let uncompressed: Vec<&[u8]> = layers.iter().map(|(_, u, _)| u.as_slice()).collect();
        let mut config = self.blob(config_json(&uncompressed, run));
        config["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .map(|(stored, _, media_type)| {
                let mut d = self.blob(stored.clone());
                d["mediaType"] = json!(media_type);
                d
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layer_descriptors,
        });
        let mut descriptor = self.blob(serde_json::to_vec(&manifest).unwrap());
        descriptor["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
        descriptor
    }

    pub fn archive(&self) -> Vec<u8> {
        let mut tar = Tar::default();
        tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.index,
        });
        tar.file("index.json", &serde_json::to_vec(&index).unwrap());
        tar.dir("blobs/", 0o755).dir("blobs/sha256/", 0o755);
        for (d, bytes) in &self.blobs {
            tar.file(&format!("blobs/sha256/{}", &d["sha256:".len()..]), bytes);
        }
        tar.finish()
    }
}

pub fn named(mut descriptor: Value, ref_name: &str) -> Value {
    descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": ref_name});
    descriptor
}

pub fn plain_layer(tar: &mut Tar) -> (Vec<u8>, Vec<u8>, &'static str) {
    let bytes = tar.finish();
    (
        bytes.clone(),
        bytes,
        "application/vnd.oci.image.layer.v1.tar",
    )
}

pub fn gzip_layer(tar: &mut Tar) -> (Vec<u8>, Vec<u8>, &'static str) {
    let bytes = tar.finish();
    (
        gzip(&bytes),
        bytes,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    )
}
