//! Unpacks one layer tarball into a directory that overlayfs can stack as a `lowerdir`.
//!
//! OCI whiteouts become overlayfs's own form: `.wh.NAME` a 0:0 character device `NAME`,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` xattr on its directory. Every path is
//! checked: `..` components and writes through a symlink (which could point anywhere on the
//! host) are refused, so nothing is ever written outside the layer directory.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

use super::digest::{Digest, Hashing};
use super::error::{ImageError, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What unpacking found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Digest of the uncompressed tar stream: the layer's `diff_id`.
    pub diff_id: Digest,
    /// Bytes of regular file content written.
    pub size: u64,
}

/// How a layer blob is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff_compression(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompressed<'a, R: Read + 'a>(reader: R, what: &str) -> Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let prefix = reader.fill_buf().ctx(|| format!("read {what}"))?;
    Ok(match sniff_compression(prefix) {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => {
            return Err(ImageError::Format(format!(
                "{what} is zstd-compressed, which this build does not support"
            )));
        }
        Compression::None => Box::new(reader),
    })
}

/// Extracts the (possibly compressed) layer tar read from `blob` into `dest`, an existing
/// empty directory. `layer` names the layer in errors.
pub fn unpack_layer(blob: impl Read, dest: &Path, layer: &str) -> Result<Unpacked> {
    let stream = Hashing::new(decompressed(blob, layer)?);
    let mut archive = tar::Archive::new(stream);
    let mut unpacker = Unpacker {
        dest,
        layer,
        chown: rustix::process::geteuid().is_root(),
        dir_times: Vec::new(),
        size: 0,
    };
    let entries = archive.entries().ctx(|| format!("read layer {layer}"))?;
    for entry in entries {
        let mut entry = entry.ctx(|| format!("read layer {layer}"))?;
        unpacker.entry(&mut entry)?;
    }
    // Directory times last: creating their children changed them.
    for (path, mtime) in unpacker.dir_times.iter().rev() {
        set_mtime(path, *mtime)?;
    }
    let size = unpacker.size;
    // The diff_id covers the whole stream, end-of-archive blocks included.
    let mut stream = archive.into_inner();
    io::copy(&mut stream, &mut io::sink()).ctx(|| format!("read layer {layer}"))?;
    let (diff_id, _, _) = stream.finish();
    Ok(Unpacked { diff_id, size })
}

struct Unpacker<'a> {
    dest: &'a Path,
    layer: &'a str,
    chown: bool,
    dir_times: Vec<(PathBuf, u64)>,
    size: u64,
}

impl Unpacker<'_> {
    fn unsafe_path(&self, path: &Path, reason: &'static str) -> ImageError {
        ImageError::UnsafePath {
            layer: self.layer.to_string(),
            path: path.to_path_buf(),
            reason,
        }
    }

    /// The entry's path relative to the layer root, refusing `..`.
    fn relative(&self, raw: &Path) -> Result<PathBuf> {
        let mut clean = PathBuf::new();
        for component in raw.components() {
            match component {
                Component::Normal(part) => clean.push(part),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir => return Err(self.unsafe_path(raw, "contains `..`")),
                Component::Prefix(_) => return Err(self.unsafe_path(raw, "has a prefix")),
            }
        }
        Ok(clean)
    }

    /// Makes every parent directory of `relative` exist as a real directory (never through a
    /// symlink) and returns the absolute path.
    fn prepare_parents(&self, relative: &Path) -> Result<PathBuf> {
        let mut current = self.dest.to_path_buf();
        let parent_count = relative.components().count().saturating_sub(1);
        for part in relative.components().take(parent_count) {
            current.push(part);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(self.unsafe_path(relative, "goes through a symlink"));
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(ImageError::Format(format!(
                        "layer {}: {:?} is under a non-directory",
                        self.layer, relative
                    )));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&current).ctx(|| format!("create {current:?}"))?;
                    fs::set_permissions(&current, fs::Permissions::from_mode(0o755))
                        .ctx(|| format!("chmod {current:?}"))?;
                }
                Err(err) => return Err(err).ctx(|| format!("stat {current:?}")),
            }
        }
        Ok(self.dest.join(relative))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType::*;
        let kind = entry.header().entry_type();
        if matches!(kind, XGlobalHeader | XHeader | GNULongName | GNULongLink) {
            return Ok(());
        }
        let raw_path = entry
            .path()
            .ctx(|| format!("layer {}: bad path", self.layer))?
            .into_owned();
        let relative = self.relative(&raw_path)?;
        let name = relative.file_name().unwrap_or_default().to_owned();

        if relative.as_os_str().is_empty() {
            // `./`: the layer root itself.
            if kind == Directory {
                let root = self.dest.to_path_buf();
                self.apply_metadata(entry, &root, true)?;
            }
            return Ok(());
        }

        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&relative, &name, OsStr::from_bytes(hidden));
        }

        let path = self.prepare_parents(&relative)?;
        let existing = fs::symlink_metadata(&path).ok();
        match kind {
            Directory => {
                if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                    remove_any(&path)?;
                }
                if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                    fs::create_dir(&path).ctx(|| format!("create {path:?}"))?;
                }
                self.apply_metadata(entry, &path, true)?;
            }
            Regular | Continuous | GNUSparse => {
                if existing.is_some() {
                    remove_any(&path)?;
                }
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .ctx(|| format!("create {path:?}"))?;
                self.size += io::copy(entry, &mut file).ctx(|| format!("write {path:?}"))?;
                drop(file);
                self.apply_metadata(entry, &path, false)?;
            }
            Symlink => {
                let target = entry
                    .link_name()
                    .ctx(|| format!("layer {}: bad link", self.layer))?
                    .ok_or_else(|| {
                        ImageError::Format(format!("layer {}: symlink without target", self.layer))
                    })?
                    .into_owned();
                if existing.is_some() {
                    remove_any(&path)?;
                }
                std::os::unix::fs::symlink(&target, &path).ctx(|| format!("symlink {path:?}"))?;
                self.apply_owner(entry, &path)?;
                set_mtime(&path, entry.header().mtime().unwrap_or(0))?;
            }
            Link => {
                let target = entry
                    .link_name()
                    .ctx(|| format!("layer {}: bad link", self.layer))?
                    .ok_or_else(|| {
                        ImageError::Format(format!(
                            "layer {}: hard link without target",
                            self.layer
                        ))
                    })?
                    .into_owned();
                let target_relative = self.relative(&target)?;
                let target_path = self.prepare_parents(&target_relative)?;
                match fs::symlink_metadata(&target_path) {
                    Ok(meta) if meta.is_dir() => {
                        return Err(self.unsafe_path(&target, "is a hard link to a directory"));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(ImageError::Format(format!(
                            "layer {}: hard link {relative:?} to missing {target:?}",
                            self.layer
                        )));
                    }
                }
                if target_path == path {
                    return Ok(());
                }
                if existing.is_some() {
                    remove_any(&path)?;
                }
                // linkat without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                fs::hard_link(&target_path, &path).ctx(|| format!("link {path:?}"))?;
            }
            Char | Block | Fifo => {
                if existing.is_some() {
                    remove_any(&path)?;
                }
                let header = entry.header();
                let file_type = match kind {
                    Char => FileType::CharacterDevice,
                    Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    CWD,
                    &path,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .ctx(|| format!("mknod {path:?}"))?;
                self.apply_metadata(entry, &path, false)?;
            }
            _ => {
                // Sockets and unknown types carry nothing a container needs.
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, relative: &Path, name: &OsStr, hidden: &OsStr) -> Result<()> {
        let path = self.prepare_parents(relative)?;
        let dir = path.parent().expect("whiteout has a parent").to_path_buf();
        if name == WHITEOUT_OPAQUE {
            rustix::fs::lsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .ctx(|| format!("set {OVERLAY_OPAQUE_XATTR} on {dir:?} (needs root)"))?;
            return Ok(());
        }
        if hidden.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) || hidden.is_empty() {
            // Other `.wh..wh.` names are aufs bookkeeping, meaningless to overlayfs.
            return Ok(());
        }
        let target = dir.join(hidden);
        if fs::symlink_metadata(&target).is_ok() {
            remove_any(&target)?;
        }
        rustix::fs::mknodat(
            CWD,
            &target,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .ctx(|| format!("create whiteout {target:?} (needs root)"))?;
        Ok(())
    }

    fn apply_owner<R: Read>(&self, entry: &tar::Entry<'_, R>, path: &Path) -> Result<()> {
        if !self.chown {
            return Ok(());
        }
        let (uid, gid) = owner(entry);
        rustix::fs::chownat(
            CWD,
            path,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {path:?}"))
    }

    /// Owner, then mode (chown clears setuid bits), xattrs and (for files) mtime.
    fn apply_metadata<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        is_dir: bool,
    ) -> Result<()> {
        self.apply_owner(entry, path)?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(if is_dir { 0o755 } else { 0o644 }) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .ctx(|| format!("chmod {path:?}"))?;
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for extension in extensions.flatten() {
                let Ok(key) = extension.key() else { continue };
                let Some(xattr) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                // An image must not steer overlayfs (redirects, metacopy, opaque) itself.
                if xattr.starts_with("trusted.overlay.") {
                    continue;
                }
                rustix::fs::lsetxattr(path, xattr, extension.value_bytes(), XattrFlags::empty())
                    .ctx(|| format!("set xattr {xattr} on {path:?}"))?;
            }
        }
        if is_dir {
            self.dir_times.push((path.to_path_buf(), mtime));
        } else {
            set_mtime(path, mtime)?;
        }
        Ok(())
    }
}

/// uid/gid from the header (numeric fields, GNU base-256 for large ids included).
fn owner<R: Read>(entry: &tar::Entry<'_, R>) -> (u32, u32) {
    let header = entry.header();
    (
        header.uid().unwrap_or(0) as u32,
        header.gid().unwrap_or(0) as u32,
    )
}

fn set_mtime(path: &Path, mtime: u64) -> Result<()> {
    let time = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("set times on {path:?}"))
}

fn remove_any(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).ctx(|| format!("stat {path:?}"))?;
    if meta.is_dir() {
        fs::remove_dir_all(path).ctx(|| format!("remove {path:?}"))
    } else {
        fs::remove_file(path).ctx(|| format!("remove {path:?}"))
    }
}

/// Flushes everything written under `dir` to disk with one `syncfs`.
pub(crate) fn sync_filesystem(dir: &Path) -> Result<()> {
    let handle = File::open(dir).ctx(|| format!("open {dir:?}"))?;
    rustix::fs::syncfs(&handle).ctx(|| format!("syncfs {dir:?}"))
}
