//! The on-disk store under `<data-dir>/images/`:
//!
//! ```text
//! lock                     flock(2): held by every writer (import, remove, GC)
//! index.json               images (replaced atomically: temp file, fsync, rename)
//! blobs/sha256/<hex>       manifests, configs and layer blobs, verified on write
//! layers/<hex>/fs          each layer blob unpacked once, an overlayfs lowerdir
//! in-use/<image-hex>/<who>  pins: containers using an image (rm refuses, GC spares)
//! tmp/                     staging for blobs being written
//! ```
//!
//! Readers need no lock: every file they read is replaced by rename.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, Hashing};
use super::error::{ImageError, IoContext, Result};
use super::gc::{self, DiskUsage, GcPolicy, ImageUsage};
use super::reference::Reference;
use super::spec::ImageConfig;
use super::unpack;

/// One layer of an image, bottom first in [`ImageRecord::layers`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed or not).
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Bytes of file content once unpacked.
    pub unpacked_size: u64,
}

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image ID: the config blob's digest, as containerd and kubelet report it.
    pub id: Digest,
    /// Normalised `name:tag` references.
    pub repo_tags: Vec<String>,
    /// Normalised `name@manifest-digest` references.
    pub repo_digests: Vec<String>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub layers: Vec<LayerRecord>,
    /// Manifest + config + layer blobs, the size `crictl images` reports.
    pub size: u64,
    pub config: ImageConfig,
    /// Unix seconds.
    pub imported_at: u64,
    /// Unix seconds; updated by [`ImageStore::mark_used`].
    pub last_used: u64,
}

impl ImageRecord {
    /// True when `reference` names this image: a tag, a digest reference, the ID or an ID
    /// prefix (`sha256:` optional), as `crictl rmi` accepts.
    fn matches(&self, query: &Query) -> bool {
        match query {
            Query::Reference(reference) => match &reference.digest {
                Some(digest) => self
                    .repo_digests
                    .contains(&format!("{}@{digest}", reference.name())),
                None => self.repo_tags.contains(&reference.to_string()),
            },
            Query::IdPrefix(prefix) => self.id.hex().starts_with(prefix.as_str()),
        }
    }
}

enum Query {
    Reference(Reference),
    IdPrefix(String),
}

fn parse_query(text: &str) -> Result<Vec<Query>> {
    // A name first (`beef` is a repository before it is an ID prefix), then the ID.
    let bare = text.strip_prefix("sha256:").unwrap_or(text);
    let is_id_prefix = !bare.is_empty()
        && bare.len() <= 64
        && bare.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let mut queries = Vec::new();
    match Reference::parse(text) {
        Ok(reference) => queries.push(Query::Reference(reference)),
        Err(err) if !is_id_prefix => return Err(err),
        Err(_) => {}
    }
    if is_id_prefix {
        queries.push(Query::IdPrefix(bare.to_string()));
    }
    Ok(queries)
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub version: u32,
    pub images: Vec<ImageRecord>,
}

/// Held while writing the store: `flock(LOCK_EX)` on `images/lock`, released on drop, so
/// `timonel image import` and a running agent never interleave their writes.
pub struct StoreLock {
    _file: File,
}

/// The image store of one node.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating when missing) the store in `<data_dir>/images`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("images");
        for dir in [
            root.join("blobs/sha256"),
            root.join("layers"),
            root.join("tmp"),
        ] {
            fs::create_dir_all(&dir).ctx(|| format!("create {dir:?}"))?;
        }
        Ok(ImageStore { root })
    }

    /// `<data_dir>/images`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// The unpacked layer tree (an overlayfs lowerdir) of a layer blob.
    pub fn layer_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("layers").join(digest.hex()).join("fs")
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        fs::read(&path).ctx(|| format!("read blob {digest}"))
    }

    /// Takes the store's write lock, waiting for another process that holds it.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {path:?}"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .ctx(|| format!("lock {path:?}"))?;
        Ok(StoreLock { _file: file })
    }

    /// Starts writing a blob; [`BlobWriter::commit`] verifies and publishes it.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.root.join("tmp"))
            .ctx(|| "create a temporary blob")?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Hashing::new(file),
        })
    }

    /// Writes a whole in-memory blob, verifying `expected` when given.
    pub fn write_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let mut writer = self.blob_writer()?;
        writer.write_all(bytes).ctx(|| "write blob")?;
        writer.commit(expected, None)
    }

    /// All images, ordered by ID.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.load_index()?.images)
    }

    /// The image `reference` names (a tag, a digest reference, the ID or a unique ID prefix).
    pub fn get(&self, reference: &str) -> Result<ImageRecord> {
        let index = self.load_index()?;
        find(&index, reference).map(|i| index.images[i].clone())
    }

    /// overlayfs `lowerdir` entries for an image, top-most layer first (the order overlayfs
    /// wants them in).
    pub fn lower_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|layer| self.layer_path(&layer.digest))
            .collect()
    }

    /// Records that a container started from `image_id` at `now` (Unix seconds), for the
    /// least-recently-used order of GC.
    pub fn mark_used(&self, image_id: &Digest, now: u64) -> Result<()> {
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        let Some(image) = index.images.iter_mut().find(|i| &i.id == image_id) else {
            return Err(ImageError::NotFound(image_id.to_string()));
        };
        image.last_used = image.last_used.max(now);
        self.save_index(&index)
    }

    /// Removes the image `reference` names (all its tags, as containerd's CRI `RemoveImage`
    /// does) with the blobs and unpacked layers no other image uses.
    /// Refuses (with [`ImageError::InUse`]) an image that a container has pinned.
    pub fn remove(&self, reference: &str) -> Result<ImageRecord> {
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        let position = find(&index, reference)?;
        let holders = self.holders(&index.images[position].id)?;
        if !holders.is_empty() {
            return Err(ImageError::InUse {
                reference: reference.to_string(),
                holders,
            });
        }
        let image = index.images.remove(position);
        self.save_index(&index)?;
        self.delete_unreferenced(&index, std::slice::from_ref(&image))?;
        Ok(image)
    }

    /// Marks `image_id` as used by `holder` (a container ID: letters, digits, `-`, `_`,
    /// `.`), so that `remove` refuses it and GC spares it, from any process, until
    /// [`ImageStore::unpin`].
    pub fn pin(&self, image_id: &Digest, holder: &str) -> Result<()> {
        let path = self.pin_path(image_id, holder)?;
        let _lock = self.lock()?;
        if !self.load_index()?.images.iter().any(|i| &i.id == image_id) {
            return Err(ImageError::NotFound(image_id.to_string()));
        }
        let dir = path.parent().expect("pin dir");
        fs::create_dir_all(dir).ctx(|| format!("create {dir:?}"))?;
        File::create(&path).ctx(|| format!("create {path:?}"))?;
        Ok(())
    }

    /// Drops a pin taken with [`ImageStore::pin`]; unknown pins are ignored.
    pub fn unpin(&self, image_id: &Digest, holder: &str) -> Result<()> {
        let path = self.pin_path(image_id, holder)?;
        let _lock = self.lock()?;
        remove_if_exists(&path)?;
        // Gone once empty; fails harmlessly while other holders remain.
        let _ = fs::remove_dir(path.parent().expect("pin dir"));
        Ok(())
    }

    /// Who pinned `image_id`, sorted.
    pub fn holders(&self, image_id: &Digest) -> Result<Vec<String>> {
        let dir = self.root.join("in-use").join(image_id.hex());
        let mut holders = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect::<Vec<_>>(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err).ctx(|| format!("read {dir:?}")),
        };
        holders.sort();
        Ok(holders)
    }

    fn pin_path(&self, image_id: &Digest, holder: &str) -> Result<PathBuf> {
        let valid = !holder.is_empty()
            && holder.len() <= 255
            && !holder.starts_with('.')
            && holder
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(ImageError::Format(format!("invalid pin holder {holder:?}")));
        }
        Ok(self.root.join("in-use").join(image_id.hex()).join(holder))
    }

    /// kubelet-style image GC: when disk usage of the store's filesystem is above the high
    /// threshold, removes unused images (least recently used first) until the low threshold.
    /// Images in `in_use` or pinned are spared. Returns the removed images.
    pub fn garbage_collect(
        &self,
        policy: &GcPolicy,
        in_use: &HashSet<Digest>,
        now: u64,
    ) -> Result<Vec<ImageRecord>> {
        let usage = self.disk_usage()?;
        let _lock = self.lock()?;
        let mut index = self.load_index()?;
        let candidates: Vec<ImageUsage> = index
            .images
            .iter()
            .map(|image| {
                Ok(ImageUsage {
                    id: image.id.clone(),
                    size: image.size,
                    last_used: image.last_used,
                    first_detected: image.imported_at,
                    pinned: !self.holders(&image.id)?.is_empty(),
                })
            })
            .collect::<Result<_>>()?;
        let doomed: HashSet<Digest> = gc::images_to_remove(usage, policy, &candidates, in_use, now)
            .into_iter()
            .collect();
        let (removed, kept): (Vec<_>, Vec<_>) = index
            .images
            .drain(..)
            .partition(|image| doomed.contains(&image.id));
        index.images = kept;
        self.save_index(&index)?;
        self.delete_unreferenced(&index, &removed)?;
        self.sweep_staging(Duration::from_secs(3600))?;
        Ok(removed)
    }

    /// Size and free space of the filesystem holding the store.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let stat = rustix::fs::statvfs(&self.root).ctx(|| format!("statvfs {:?}", self.root))?;
        Ok(DiskUsage {
            capacity: stat.f_blocks * stat.f_frsize,
            available: stat.f_bavail * stat.f_frsize,
        })
    }

    pub(crate) fn load_index(&self) -> Result<IndexFile> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
                context: format!("parse {path:?}"),
                source,
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(IndexFile {
                version: 1,
                images: Vec::new(),
            }),
            Err(err) => Err(err).ctx(|| format!("read {path:?}")),
        }
    }

    /// Call with the lock held.
    pub(crate) fn save_index(&self, index: &IndexFile) -> Result<()> {
        let mut sorted = IndexFile {
            version: 1,
            images: index.images.clone(),
        };
        sorted.images.sort_by(|a, b| a.id.cmp(&b.id));
        let bytes = serde_json::to_vec_pretty(&sorted).expect("index serialises");
        let mut file = tempfile::Builder::new()
            .prefix("index-")
            .tempfile_in(&self.root)
            .ctx(|| "create a temporary index")?;
        file.write_all(&bytes).ctx(|| "write the index")?;
        file.as_file().sync_all().ctx(|| "sync the index")?;
        file.persist(self.root.join("index.json"))
            .map_err(|err| err.error)
            .ctx(|| "replace index.json")?;
        sync_dir(&self.root)
    }

    /// Deletes the blobs and layers of `removed` images that no image in `index` still uses.
    fn delete_unreferenced(&self, index: &IndexFile, removed: &[ImageRecord]) -> Result<()> {
        let mut live = BTreeSet::new();
        for image in &index.images {
            live.insert(image.manifest_digest.clone());
            live.insert(image.id.clone());
            live.extend(image.layers.iter().map(|l| l.digest.clone()));
        }
        for image in removed {
            let blobs = [image.manifest_digest.clone(), image.id.clone()]
                .into_iter()
                .chain(image.layers.iter().map(|l| l.digest.clone()));
            for digest in blobs {
                if live.contains(&digest) {
                    continue;
                }
                remove_if_exists(&self.blob_path(&digest))?;
                self.remove_layer(&digest)?;
            }
        }
        Ok(())
    }

    /// Removes an unpacked layer: renamed away first so a half-deleted tree never looks
    /// like a complete one.
    fn remove_layer(&self, digest: &Digest) -> Result<()> {
        let dir = self.root.join("layers").join(digest.hex());
        if !dir.exists() {
            return Ok(());
        }
        let trash = self
            .root
            .join("tmp")
            .join(format!("layer-trash-{}", digest.hex()));
        if trash.exists() {
            fs::remove_dir_all(&trash).ctx(|| format!("remove {trash:?}"))?;
        }
        fs::rename(&dir, &trash).ctx(|| format!("move {dir:?} away"))?;
        fs::remove_dir_all(&trash).ctx(|| format!("remove {trash:?}"))
    }

    /// Unpacks a layer blob (once: an existing tree is kept) and returns its diff_id and
    /// unpacked size. Call with the lock held.
    pub(crate) fn ensure_unpacked(
        &self,
        digest: &Digest,
        known: Option<&LayerRecord>,
    ) -> Result<unpack::Unpacked> {
        let final_dir = self.root.join("layers").join(digest.hex());
        if final_dir.join("fs").is_dir()
            && let Some(known) = known
        {
            return Ok(unpack::Unpacked {
                diff_id: known.diff_id.clone(),
                size: known.unpacked_size,
            });
        }
        if final_dir.exists() {
            // Unpacked by an earlier import whose record is gone: redo it, to learn the
            // diff_id and to never trust a tree no index vouches for.
            fs::remove_dir_all(&final_dir).ctx(|| format!("remove {final_dir:?}"))?;
        }
        let staging = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.root.join("tmp"))
            .ctx(|| "create a layer staging directory")?;
        let fs_dir = staging.path().join("fs");
        fs::create_dir(&fs_dir).ctx(|| format!("create {fs_dir:?}"))?;
        fs::set_permissions(&fs_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .ctx(|| format!("chmod {fs_dir:?}"))?;
        let blob = File::open(self.blob_path(digest)).ctx(|| format!("open blob {digest}"))?;
        let unpacked = unpack::unpack_layer(blob, &fs_dir, digest.as_str())?;
        unpack::sync_filesystem(staging.path())?;
        let staged = staging.keep();
        fs::rename(&staged, &final_dir).ctx(|| format!("move layer into {final_dir:?}"))?;
        sync_dir(&self.root.join("layers"))?;
        Ok(unpacked)
    }

    /// Removes staging leftovers (of crashed imports) older than `age`.
    pub fn sweep_staging(&self, age: Duration) -> Result<()> {
        let tmp = self.root.join("tmp");
        let now = SystemTime::now();
        for entry in fs::read_dir(&tmp).ctx(|| format!("read {tmp:?}"))? {
            let entry = entry.ctx(|| format!("read {tmp:?}"))?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|elapsed| elapsed >= age);
            if old {
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Index position of the one image `reference` names.
fn find(index: &IndexFile, reference: &str) -> Result<usize> {
    let queries = parse_query(reference)?;
    for query in &queries {
        let hits: Vec<usize> = index
            .images
            .iter()
            .enumerate()
            .filter(|(_, image)| image.matches(query))
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => continue,
            1 => return Ok(hits[0]),
            count => {
                return Err(ImageError::Ambiguous {
                    reference: reference.to_string(),
                    count,
                });
            }
        }
    }
    Err(ImageError::NotFound(reference.to_string()))
}

/// A blob being written: hashed as it goes, published by [`BlobWriter::commit`].
pub struct BlobWriter {
    store: ImageStore,
    file: Hashing<tempfile::NamedTempFile>,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Verifies digest (and size) when expected, fsyncs and renames the blob into place.
    /// A blob already present is kept (same digest, same bytes).
    pub fn commit(self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<Digest> {
        self.commit_reporting(expected, expected_size)
            .map(|(digest, _)| digest)
    }

    /// Like [`BlobWriter::commit`]; also says whether the blob is new to the store.
    pub(crate) fn commit_reporting(
        self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<(Digest, bool)> {
        let (digest, size, file) = self.file.finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(ImageError::DigestMismatch {
                what: "blob".to_string(),
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(ImageError::SizeMismatch {
                what: format!("blob {digest}"),
                expected,
                actual: size,
            });
        }
        let target = self.store.blob_path(&digest);
        if target.is_file() {
            return Ok((digest, false));
        }
        file.as_file().sync_all().ctx(|| "sync blob")?;
        file.persist(&target)
            .map_err(|err| err.error)
            .ctx(|| format!("store blob {digest}"))?;
        sync_dir(target.parent().expect("blob dir"))?;
        Ok((digest, true))
    }
}

/// Reads the whole of `reader` into a new blob.
pub(crate) fn copy_into_blob(
    store: &ImageStore,
    reader: &mut dyn Read,
    expected: Option<&Digest>,
) -> Result<(Digest, u64, bool)> {
    let mut writer = store.blob_writer()?;
    let size = io::copy(reader, &mut writer).ctx(|| "copy blob")?;
    let (digest, created) = writer.commit_reporting(expected, None)?;
    Ok((digest, size, created))
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("sync {dir:?}"))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).ctx(|| format!("remove {path:?}")),
        Ok(_) => fs::remove_file(path).ctx(|| format!("remove {path:?}")),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).ctx(|| format!("stat {path:?}")),
    }
}
