//! Import of image archives: an OCI image layout in a tar (`oci-layout`, `index.json`,
//! `blobs/sha256/…`; nested indexes resolved to this machine's platform) or a `docker save`
//! archive (`manifest.json` with `Config`, `RepoTags`, `Layers`). The archive itself may be
//! gzip-compressed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::digest::Digest;
use super::error::{ImageError, IoContext, Result};
use super::reference::Reference;
use super::spec::{self, ConfigFile, Descriptor, ImageConfig, Index, Manifest, Sniff};
use super::store::{self, ImageRecord, ImageStore, LayerRecord, StoreLock};
use super::unpack;

/// Options of [`ImageStore::import_archive`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Repository name for images whose `org.opencontainers.image.ref.name` is a bare tag
    /// (`latest`), e.g. `docker.io/library/busybox`. Without it such images are imported
    /// untagged (reachable by ID).
    pub base_name: Option<String>,
}

/// JSON files read from the archive rather than stored as blobs.
const METADATA_FILES: [&str; 4] = ["index.json", "oci-layout", "manifest.json", "repositories"];
const METADATA_LIMIT: u64 = 64 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What the archive's entries turned into.
#[derive(Default)]
struct Staged {
    metadata: HashMap<String, Vec<u8>>,
    files: HashMap<String, (Digest, u64)>,
    links: HashMap<String, String>,
    /// Blobs this import added to the store (candidates for cleanup if unused).
    added: HashSet<Digest>,
}

impl Staged {
    fn lookup(&self, path: &str) -> Result<(Digest, u64)> {
        let mut current = normalise(path);
        for _ in 0..16 {
            if let Some(found) = self.files.get(&current) {
                return Ok(found.clone());
            }
            match self.links.get(&current) {
                Some(target) => current = target.clone(),
                None => break,
            }
        }
        Err(ImageError::Format(format!(
            "{path:?} is not in the archive"
        )))
    }
}

impl ImageStore {
    /// Imports every image of an archive file; returns them as stored.
    pub fn import_archive(&self, path: &Path, options: &ImportOptions) -> Result<Vec<ImageRecord>> {
        let file = File::open(path).ctx(|| format!("open {path:?}"))?;
        self.import_reader(file, options)
    }

    /// Imports every image of an archive read from `reader`.
    pub fn import_reader(
        &self,
        reader: impl Read,
        options: &ImportOptions,
    ) -> Result<Vec<ImageRecord>> {
        let lock = self.lock()?;
        let mut staged = Staged::default();
        let result = self
            .stage(reader, &mut staged)
            .and_then(|()| self.register_staged(&lock, &staged, options));
        // Blobs the archive carried that no image references (attestations, other
        // platforms, docker's legacy `json` files) are not kept.
        let index = self.load_index()?;
        let live: HashSet<&Digest> = index
            .images
            .iter()
            .flat_map(|image| {
                [&image.manifest_digest, &image.id]
                    .into_iter()
                    .chain(image.layers.iter().map(|l| &l.digest))
            })
            .collect();
        for digest in &staged.added {
            if !live.contains(digest) {
                let _ = std::fs::remove_file(self.blob_path(digest));
            }
        }
        result
    }

    /// Imports every `*.tar`, `*.tar.gz` and `*.tgz` file directly in `images/` (tarballs
    /// dropped there, as k3s does with `agent/images/`). Returns each file's result.
    pub fn import_dropped_archives(
        &self,
    ) -> Result<Vec<(std::path::PathBuf, Result<Vec<ImageRecord>>)>> {
        let mut paths: Vec<_> = std::fs::read_dir(self.root())
            .ctx(|| format!("read {:?}", self.root()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.is_file()
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|name| {
                            name.ends_with(".tar")
                                || name.ends_with(".tar.gz")
                                || name.ends_with(".tgz")
                        })
            })
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|path| {
                let result = self.import_archive(&path, &ImportOptions::default());
                (path, result)
            })
            .collect())
    }

    /// Registers an image whose manifest, config and layer blobs are already in the store
    /// (a registry pull writes them with [`ImageStore::blob_writer`]): unpacks its layers
    /// and records it under `names`.
    pub fn register_image(
        &self,
        manifest_digest: &Digest,
        names: &[Reference],
    ) -> Result<ImageRecord> {
        let lock = self.lock()?;
        let bytes = self.read_blob(manifest_digest)?;
        let media_type = serde_json::from_slice::<Sniff>(&bytes)
            .map(|s| s.media_type)
            .unwrap_or_default();
        self.register_locked(&lock, manifest_digest, &media_type, names, None)
    }

    /// Like [`ImageStore::register_image`] for an image pulled from a registry: the repo
    /// digests record `repo_digest`, the digest the registry resolved the reference to (a
    /// multi-arch index's, when the reference named one), as containerd records it, so that
    /// `name@<that digest>` finds the image again.
    pub fn register_pulled(
        &self,
        manifest_digest: &Digest,
        names: &[Reference],
        repo_digest: &Digest,
    ) -> Result<ImageRecord> {
        let lock = self.lock()?;
        let bytes = self.read_blob(manifest_digest)?;
        let media_type = serde_json::from_slice::<Sniff>(&bytes)
            .map(|s| s.media_type)
            .unwrap_or_default();
        self.register_locked(
            &lock,
            manifest_digest,
            &media_type,
            names,
            Some(repo_digest),
        )
    }

    /// Stores the archive's files as blobs, recording into `staged` as it goes (so that a
    /// failure halfway still lets the caller delete what was added).
    fn stage(&self, reader: impl Read, staged: &mut Staged) -> Result<()> {
        let reader = unpack::decompressed(reader, "image archive")?;
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().ctx(|| "read image archive")? {
            let mut entry = entry.ctx(|| "read image archive")?;
            let path = normalise(&entry.path().ctx(|| "read image archive")?.to_string_lossy());
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if METADATA_FILES.contains(&path.as_str()) {
                        let mut bytes = Vec::new();
                        entry
                            .by_ref()
                            .take(METADATA_LIMIT)
                            .read_to_end(&mut bytes)
                            .ctx(|| format!("read {path}"))?;
                        staged.metadata.insert(path, bytes);
                        continue;
                    }
                    let expected = path
                        .strip_prefix("blobs/sha256/")
                        .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
                    if let Some(expected) = &expected
                        && self.has_blob(expected)
                    {
                        // Already stored (verified when it was): skip the bytes.
                        staged
                            .files
                            .insert(path, (expected.clone(), entry.header().size().unwrap_or(0)));
                        continue;
                    }
                    let (digest, size, created) =
                        store::copy_into_blob(self, &mut entry, expected.as_ref()).map_err(
                            |err| match err {
                                ImageError::DigestMismatch {
                                    expected, actual, ..
                                } => ImageError::DigestMismatch {
                                    what: path.clone(),
                                    expected,
                                    actual,
                                },
                                other => other,
                            },
                        )?;
                    if created {
                        staged.added.insert(digest.clone());
                    }
                    staged.files.insert(path, (digest, size));
                }
                tar::EntryType::Symlink => {
                    if let Ok(Some(target)) = entry.link_name() {
                        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
                        let target = normalise(&format!("{dir}/{}", target.to_string_lossy()));
                        staged.links.insert(path, target);
                    }
                }
                tar::EntryType::Link => {
                    if let Ok(Some(target)) = entry.link_name() {
                        staged
                            .links
                            .insert(path, normalise(&target.to_string_lossy()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn register_staged(
        &self,
        lock: &StoreLock,
        staged: &Staged,
        options: &ImportOptions,
    ) -> Result<Vec<ImageRecord>> {
        if let Some(index_bytes) = staged.metadata.get("index.json") {
            let index: Index = parse_json(index_bytes, "index.json")?;
            let mut images = Vec::new();
            for descriptor in &index.manifests {
                let names =
                    names_from_annotations(&descriptor.annotations, options.base_name.as_deref())?;
                let (manifest, media_type) = self.resolve_manifest(descriptor, 0)?;
                images.push(self.register_locked(lock, &manifest, &media_type, &names, None)?);
            }
            if images.is_empty() {
                return Err(ImageError::Format("index.json lists no image".to_string()));
            }
            return Ok(images);
        }
        if let Some(manifest_bytes) = staged.metadata.get("manifest.json") {
            let entries: Vec<DockerManifestEntry> = parse_json(manifest_bytes, "manifest.json")?;
            let mut images = Vec::new();
            for entry in &entries {
                let (config_digest, config_size) = staged.lookup(&entry.config)?;
                let mut layers = Vec::new();
                for layer in &entry.layers {
                    let (digest, size) = staged.lookup(layer)?;
                    let media_type = match self.blob_compression(&digest)? {
                        unpack::Compression::Gzip => {
                            "application/vnd.docker.image.rootfs.diff.tar.gzip"
                        }
                        unpack::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                        unpack::Compression::None => spec::MEDIA_DOCKER_LAYER_TAR,
                    };
                    layers.push(Descriptor {
                        media_type: media_type.to_string(),
                        digest,
                        size,
                        annotations: BTreeMap::new(),
                        platform: None,
                    });
                }
                // docker save carries no manifest: write the one a registry would serve.
                let manifest = Manifest {
                    schema_version: 2,
                    media_type: spec::MEDIA_DOCKER_MANIFEST.to_string(),
                    config: Descriptor {
                        media_type: spec::MEDIA_DOCKER_CONFIG.to_string(),
                        digest: config_digest,
                        size: config_size,
                        annotations: BTreeMap::new(),
                        platform: None,
                    },
                    layers,
                };
                let bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
                let had = self.has_blob(&Digest::of_bytes(&bytes));
                let manifest_digest = self.write_blob(&bytes, None)?;
                let names = entry
                    .repo_tags
                    .iter()
                    .flatten()
                    .map(|tag| Reference::parse(tag))
                    .collect::<Result<Vec<_>>>()?;
                match self.register_locked(
                    lock,
                    &manifest_digest,
                    spec::MEDIA_DOCKER_MANIFEST,
                    &names,
                    None,
                ) {
                    Ok(image) => images.push(image),
                    Err(err) => {
                        if !had {
                            let _ = std::fs::remove_file(self.blob_path(&manifest_digest));
                        }
                        return Err(err);
                    }
                }
            }
            if images.is_empty() {
                return Err(ImageError::Format(
                    "manifest.json lists no image".to_string(),
                ));
            }
            return Ok(images);
        }
        Err(ImageError::Format(
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)"
                .to_string(),
        ))
    }

    fn blob_compression(&self, digest: &Digest) -> Result<unpack::Compression> {
        let mut prefix = [0u8; 4];
        let mut file = File::open(self.blob_path(digest)).ctx(|| format!("open blob {digest}"))?;
        let mut filled = 0;
        while filled < prefix.len() {
            let n = file
                .read(&mut prefix[filled..])
                .ctx(|| format!("read blob {digest}"))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(unpack::sniff_compression(&prefix[..filled]))
    }

    /// Follows indexes down to the image manifest for this machine's platform.
    fn resolve_manifest(&self, descriptor: &Descriptor, depth: usize) -> Result<(Digest, String)> {
        if depth > 4 {
            return Err(ImageError::Format(
                "image indexes nested too deep".to_string(),
            ));
        }
        let bytes = self.read_blob(&descriptor.digest)?;
        if bytes.len() as u64 != descriptor.size {
            return Err(ImageError::SizeMismatch {
                what: descriptor.digest.to_string(),
                expected: descriptor.size,
                actual: bytes.len() as u64,
            });
        }
        let sniff: Sniff = parse_json(&bytes, descriptor.digest.as_str())?;
        let media_type = [descriptor.media_type.as_str(), sniff.media_type.as_str()]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or_default()
            .to_string();
        let is_index = media_type == spec::MEDIA_OCI_INDEX
            || media_type == spec::MEDIA_DOCKER_LIST
            || (media_type.is_empty() && sniff.manifests.is_some() && sniff.config.is_none());
        if !is_index {
            return Ok((descriptor.digest.clone(), media_type));
        }
        let index: Index = parse_json(&bytes, descriptor.digest.as_str())?;
        let chosen = spec::select_platform(&index).ok_or_else(|| {
            ImageError::Format(format!(
                "image index {} has no manifest for linux/{}",
                descriptor.digest,
                spec::host_architecture()
            ))
        })?;
        self.resolve_manifest(chosen, depth + 1)
    }

    /// Verifies the manifest's blobs, unpacks its layers and records the image. The lock
    /// must be held (the `_lock` argument proves it).
    fn register_locked(
        &self,
        _lock: &StoreLock,
        manifest_digest: &Digest,
        media_type: &str,
        names: &[Reference],
        repo_digest: Option<&Digest>,
    ) -> Result<ImageRecord> {
        let bytes = self.read_blob(manifest_digest)?;
        let manifest: Manifest = parse_json(&bytes, manifest_digest.as_str())?;
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        check_size(&manifest.config, config_bytes.len() as u64)?;
        let config_file: ConfigFile = parse_json(&config_bytes, manifest.config.digest.as_str())?;
        let diff_ids = config_file.rootfs.clone().unwrap_or_default().diff_ids;
        if !diff_ids.is_empty() && diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::Format(format!(
                "config lists {} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let mut index = self.load_index()?;
        let known: HashMap<&Digest, &LayerRecord> = index
            .images
            .iter()
            .flat_map(|image| image.layers.iter().map(|l| (&l.digest, l)))
            .collect();
        let mut layers = Vec::new();
        for (position, layer) in manifest.layers.iter().enumerate() {
            let path = self.blob_path(&layer.digest);
            let size = std::fs::metadata(&path).map(|m| m.len()).map_err(|_| {
                ImageError::Format(format!("layer blob {} is missing", layer.digest))
            })?;
            check_size(layer, size)?;
            let repeated = layers
                .iter()
                .find(|l: &&LayerRecord| l.digest == layer.digest)
                .cloned();
            let unpacked = self.ensure_unpacked(
                &layer.digest,
                repeated.as_ref().or(known.get(&layer.digest).copied()),
            )?;
            if let Some(expected) = diff_ids.get(position)
                && *expected != unpacked.diff_id
            {
                let _ =
                    std::fs::remove_dir_all(self.root().join("layers").join(layer.digest.hex()));
                return Err(ImageError::DigestMismatch {
                    what: format!("uncompressed layer {}", layer.digest),
                    expected: expected.to_string(),
                    actual: unpacked.diff_id.to_string(),
                });
            }
            layers.push(LayerRecord {
                digest: layer.digest.clone(),
                diff_id: unpacked.diff_id,
                media_type: layer.media_type.clone(),
                size,
                unpacked_size: unpacked.size,
            });
        }
        let size = bytes.len() as u64
            + config_bytes.len() as u64
            + layers.iter().map(|l| l.size).sum::<u64>();
        let id = manifest.config.digest.clone();
        let tags: Vec<String> = names
            .iter()
            .filter(|n| n.tag.is_some())
            .map(|n| {
                Reference {
                    digest: None,
                    ..(*n).clone()
                }
                .to_string()
            })
            .collect();
        let mut repo_digests: Vec<String> = names
            .iter()
            .map(|n| format!("{}@{}", n.name(), repo_digest.unwrap_or(manifest_digest)))
            .collect();
        repo_digests.dedup();

        // A tag names one image: take it from any other.
        for other in index.images.iter_mut().filter(|i| i.id != id) {
            other.repo_tags.retain(|t| !tags.contains(t));
        }
        let now = store::now_unix();
        let media_type = if media_type.is_empty() {
            manifest.media_type.clone()
        } else {
            media_type.to_string()
        };
        let record = match index.images.iter_mut().find(|i| i.id == id) {
            Some(existing) => {
                for tag in tags {
                    if !existing.repo_tags.contains(&tag) {
                        existing.repo_tags.push(tag);
                    }
                }
                for digest in repo_digests {
                    if !existing.repo_digests.contains(&digest) {
                        existing.repo_digests.push(digest);
                    }
                }
                existing.clone()
            }
            None => {
                let record = ImageRecord {
                    id: id.clone(),
                    repo_tags: tags,
                    repo_digests,
                    manifest_digest: manifest_digest.clone(),
                    manifest_media_type: media_type,
                    layers,
                    size,
                    config: ImageConfig::from_config_file(&config_file),
                    imported_at: now,
                    last_used: now,
                };
                index.images.push(record.clone());
                record
            }
        };
        self.save_index(&index)?;
        Ok(record)
    }
}

fn check_size(descriptor: &Descriptor, actual: u64) -> Result<()> {
    if descriptor.size != actual {
        return Err(ImageError::SizeMismatch {
            what: descriptor.digest.to_string(),
            expected: descriptor.size,
            actual,
        });
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        context: format!("parse {what}"),
        source,
    })
}

/// The references an index entry's annotations give: containerd's full name, else
/// `org.opencontainers.image.ref.name` (a full reference, or a bare tag joined to
/// `base_name`).
fn names_from_annotations(
    annotations: &BTreeMap<String, String>,
    base_name: Option<&str>,
) -> Result<Vec<Reference>> {
    if let Some(full) = annotations.get(spec::ANNOTATION_CONTAINERD_NAME) {
        return Ok(vec![Reference::parse(full)?]);
    }
    let Some(name) = annotations.get(spec::ANNOTATION_REF_NAME) else {
        return Ok(Vec::new());
    };
    if name.contains(['/', ':', '@']) {
        return Ok(vec![Reference::parse(name)?]);
    }
    match base_name {
        Some(base) => {
            let base = Reference::parse_without_default_tag(base)?;
            Ok(vec![Reference::parse(&format!("{}:{name}", base.name()))?])
        }
        None => Ok(Vec::new()),
    }
}

/// `./a//b/../c` -> `a/c`: archive paths compared as written by different tools.
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_names() {
        let mut annotations = BTreeMap::new();
        annotations.insert(spec::ANNOTATION_REF_NAME.to_string(), "1.36".to_string());
        assert!(
            names_from_annotations(&annotations, None)
                .unwrap()
                .is_empty()
        );
        let names = names_from_annotations(&annotations, Some("busybox")).unwrap();
        assert_eq!(names[0].to_string(), "docker.io/library/busybox:1.36");
        annotations.insert(
            spec::ANNOTATION_REF_NAME.to_string(),
            "localhost:5000/app:v1".to_string(),
        );
        let names = names_from_annotations(&annotations, Some("ignored")).unwrap();
        assert_eq!(names[0].to_string(), "localhost:5000/app:v1");
        annotations.insert(
            spec::ANNOTATION_CONTAINERD_NAME.to_string(),
            "docker.io/library/busybox:latest".to_string(),
        );
        let names = names_from_annotations(&annotations, None).unwrap();
        assert_eq!(names[0].to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn normalises_archive_paths() {
        assert_eq!(normalise("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalise("abc/../def/layer.tar"), "def/layer.tar");
        assert_eq!(normalise("/manifest.json"), "manifest.json");
    }
}
