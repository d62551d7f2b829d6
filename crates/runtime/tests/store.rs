//! The image store end to end on archives built here: OCI layouts (nested index, bare tags,
//! gzip layers) and docker save archives, unpacking with whiteouts, hard links, symlinks,
//! ownership and modes, refusing escapes, removal and GC.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;
use timonel_runtime::image::{Digest, GcPolicy, ImageError, ImageStore, ImportOptions};

fn import(
    store: &ImageStore,
    archive: &[u8],
) -> timonel_runtime::image::Result<Vec<timonel_runtime::image::ImageRecord>> {
    store.import_reader(archive, &ImportOptions::default())
}

/// Unmounts on drop, so a failing assertion leaves no mount behind.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.0).status().unwrap();
        assert!(status.success(), "umount {:?}", self.0);
    }
}

fn base_layer() -> (Vec<u8>, Vec<u8>, &'static str) {
    let mut tar = Tar::default();
    tar.dir("./", 0o755)
        .dir("./etc/", 0o755)
        .file_owned("./etc/secret", b"s3cret", 0o640, 1000, 2000)
        .dir("bin/", 0o755)
        .file_owned("bin/tool", b"#!tool", 0o4755, 0, 0)
        .hardlink("bin/tool-link", "bin/tool")
        .symlink("lib", "/usr/lib")
        .symlink("bin/relative", "../etc/secret")
        .dir("opq/", 0o755)
        .file("opq/old", b"old")
        .file("gone", b"bye")
        .file("keep", b"kept")
        .fifo("run/fifo")
        .pax(&[("SCHILY.xattr.user.note", b"hello")])
        .file("noted", b"x");
    plain_layer(&mut tar)
}

fn top_layer() -> (Vec<u8>, Vec<u8>, &'static str) {
    let mut tar = Tar::default();
    tar.file(".wh.gone", b"")
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"new")
        .file_owned("etc/secret", b"changed", 0o600, 1000, 2000);
    gzip_layer(&mut tar)
}

#[test]
fn oci_layout_with_whiteouts_unpacks_for_overlayfs() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let run = json!({"Entrypoint": ["/bin/tool"], "Cmd": ["--serve"], "Env": ["A=1"],
        "WorkingDir": "/srv", "User": "1000:2000", "ExposedPorts": {"8080/tcp": {}}});
    let manifest = layout.image(&[base_layer(), top_layer()], run);
    layout
        .index
        .push(named(manifest, "docker.io/library/app:1.0"));
    let images = import(&store, &layout.archive()).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.repo_tags, ["docker.io/library/app:1.0"]);
    assert_eq!(image.config.entrypoint, ["/bin/tool"]);
    assert_eq!(image.config.cmd, ["--serve"]);
    assert_eq!(image.config.env, ["A=1"]);
    assert_eq!(image.config.working_dir, "/srv");
    assert_eq!(image.config.user, "1000:2000");
    assert_eq!(image.config.exposed_ports, ["8080/tcp"]);
    assert_eq!(store.get("app:1.0").unwrap().id, image.id);

    let lowers = store.lower_dirs(image);
    assert_eq!(lowers.len(), 2);
    let (top, base) = (&lowers[0], &lowers[1]);

    // Base layer: contents, modes, owners, links.
    assert_eq!(fs::read(base.join("etc/secret")).unwrap(), b"s3cret");
    let secret = fs::metadata(base.join("etc/secret")).unwrap();
    assert_eq!(
        (secret.uid(), secret.gid(), secret.mode() & 0o7777),
        (1000, 2000, 0o640)
    );
    let tool = fs::metadata(base.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid survives chown");
    let link = fs::metadata(base.join("bin/tool-link")).unwrap();
    assert_eq!(tool.ino(), link.ino(), "hard link shares the inode");
    assert_eq!(
        fs::read_link(base.join("lib")).unwrap(),
        Path::new("/usr/lib")
    );
    assert_eq!(
        fs::read_link(base.join("bin/relative")).unwrap(),
        Path::new("../etc/secret")
    );
    assert!(
        fs::symlink_metadata(base.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        fs::metadata(base.join("run")).unwrap().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs::metadata(base.join("keep")).unwrap().mtime(),
        1_700_000_000
    );
    assert_eq!(
        fs::metadata(base.join("opq")).unwrap().mtime(),
        1_700_000_000
    );
    let note = rustix::fs::lgetxattr(base.join("noted"), "user.note", &mut [0u8; 16][..]).unwrap();
    assert_eq!(note, 5);

    // Top layer: whiteouts in overlayfs form.
    let gone = fs::symlink_metadata(top.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!top.join(".wh.gone").exists());
    let mut value = [0u8; 4];
    let n =
        rustix::fs::lgetxattr(top.join("opq"), "trusted.overlay.opaque", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(!top.join("opq/.wh..wh..opq").exists());

    // And overlayfs agrees: the merged view hides what the top layer deletes.
    let merged = dir.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lowerdir = lowers
        .iter()
        .map(|p| p.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={lowerdir}"))
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount overlay");
    let mount = Unmount(merged.clone());
    let mut names: Vec<String> = fs::read_dir(merged.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let view = (
        merged.join("gone").exists(),
        names,
        fs::read(merged.join("etc/secret")).unwrap(),
        fs::read(merged.join("keep")).unwrap(),
    );
    drop(mount);
    assert_eq!(
        view,
        (
            false,
            vec!["new".to_string()],
            b"changed".to_vec(),
            b"kept".to_vec()
        )
    );
}

#[test]
fn docker_save_archive_imports_with_tags_and_shared_layer_paths() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let layer = Tar::default()
        .dir("bin/", 0o755)
        .file("bin/hello", b"hi")
        .finish();
    let config = config_json(&[&layer, &layer], json!({"Cmd": ["/bin/hello"]}));
    let config_name = format!("{}.json", &digest(&config)["sha256:".len()..]);
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["hello:1.0", "localhost:5000/team/hello:v1"],
        "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
    }]);
    let mut tar = Tar::default();
    tar.file("manifest.json", &serde_json::to_vec(&manifest).unwrap())
        .file("repositories", b"{}")
        .file(&config_name, &config)
        .dir("aaa/", 0o755)
        .file("aaa/VERSION", b"1.0")
        .file("aaa/json", b"{}")
        .file("aaa/layer.tar", &layer)
        .dir("bbb/", 0o755)
        // docker save writes a repeated layer as a symlink to the first copy.
        .symlink("bbb/layer.tar", "../aaa/layer.tar");
    let images = import(&store, &tar.finish()).unwrap();
    let image = &images[0];
    assert_eq!(
        image.repo_tags,
        [
            "docker.io/library/hello:1.0",
            "localhost:5000/team/hello:v1"
        ]
    );
    assert_eq!(image.id.to_string(), digest(&config));
    assert_eq!(image.config.cmd, ["/bin/hello"]);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].diff_id.to_string(), digest(&layer));
    assert_eq!(
        image.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar"
    );
    assert_eq!(
        fs::read(store.lower_dirs(image)[0].join("bin/hello")).unwrap(),
        b"hi"
    );
    // A manifest was written for it; docker's legacy json/VERSION files were not kept.
    assert!(store.has_blob(&image.manifest_digest));
    assert_eq!(image.repo_digests.len(), 2);
    assert!(!store.has_blob(&Digest::of_bytes(b"1.0")));
    assert!(!store.has_blob(&Digest::of_bytes(b"{}")));
    assert_eq!(
        store.get("localhost:5000/team/hello:v1").unwrap().id,
        image.id
    );
    assert_eq!(store.get(image.id.short()).unwrap().id, image.id);
    let by_digest = format!("docker.io/library/hello@{}", image.manifest_digest);
    assert_eq!(store.get(&by_digest).unwrap().id, image.id);
}

#[test]
fn nested_index_bare_tag_and_gzip_archive() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let native = layout.image(
        &[gzip_layer(Tar::default().file("arch", b"native"))],
        json!({}),
    );
    let other = layout.image(
        &[gzip_layer(Tar::default().file("arch", b"other"))],
        json!({}),
    );
    let mut native_entry = native.clone();
    native_entry["platform"] = json!({"architecture": host_arch(), "os": "linux"});
    let mut other_entry = other.clone();
    other_entry["platform"] = json!({"architecture": "mips64le", "os": "linux"});
    let nested = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other_entry, native_entry]});
    let mut descriptor = layout.blob(serde_json::to_vec(&nested).unwrap());
    descriptor["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    layout.index.push(named(descriptor, "3.1"));
    let archive = gzip(&layout.archive());

    // A bare tag needs a repository name to become a reference.
    let images = store
        .import_reader(
            &archive[..],
            &ImportOptions {
                base_name: Some("localhost:5000/multi".into()),
            },
        )
        .unwrap();
    assert_eq!(images[0].repo_tags, ["localhost:5000/multi:3.1"]);
    assert_eq!(
        images[0].manifest_digest.to_string(),
        native["digest"].as_str().unwrap()
    );
    assert_eq!(
        fs::read(store.lower_dirs(&images[0])[0].join("arch")).unwrap(),
        b"native"
    );
    // The other platform's blobs were not kept.
    let blobs = fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 3, "manifest, config and one layer");

    // Without a base name the image is imported untagged, reachable by ID.
    let again = import(&store, &archive).unwrap();
    assert_eq!(again[0].id, images[0].id);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn escapes_are_refused_and_nothing_is_written_outside() {
    require_root();
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().to_str().unwrap().to_string();
    let attempts: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            Tar::default().file("../../escaped", b"x").finish(),
        ),
        (
            "nested dot-dot",
            Tar::default()
                .dir("a/", 0o755)
                .file("a/../../escaped", b"x")
                .finish(),
        ),
        (
            "absolute symlink traversal",
            Tar::default()
                .symlink("link", &outside_path)
                .file("link/escaped", b"x")
                .finish(),
        ),
        (
            "relative symlink traversal",
            Tar::default()
                .symlink("up", "../../../../../../../..")
                .file("up/tmp/escaped", b"x")
                .finish(),
        ),
        (
            "hard link out",
            Tar::default()
                .hardlink("passwd", "../../../../../../etc/passwd")
                .finish(),
        ),
        (
            "hard link through a symlink",
            Tar::default()
                .symlink("link", &outside_path)
                .hardlink("stolen", "link/target")
                .finish(),
        ),
    ];
    fs::write(outside.path().join("target"), b"host file").unwrap();
    for (what, layer) in attempts {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let mut layout = Layout::default();
        let manifest = layout.image(
            &[(
                layer.clone(),
                layer,
                "application/vnd.oci.image.layer.v1.tar",
            )],
            json!({}),
        );
        layout
            .index
            .push(named(manifest, "docker.io/library/evil:latest"));
        let err = import(&store, &layout.archive()).unwrap_err();
        assert!(
            matches!(err, ImageError::UnsafePath { .. }),
            "{what}: {err}"
        );
        assert!(store.list().unwrap().is_empty(), "{what}");
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            0,
            "{what}: no layer left"
        );
        assert_eq!(
            fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            0,
            "{what}: no blob left"
        );
        let mut names: Vec<_> = fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["target"], "{what}: nothing written outside");
        assert!(
            !Path::new("/tmp/escaped").exists() && !dir.path().join("escaped").exists(),
            "{what}"
        );
        assert_eq!(
            fs::read(outside.path().join("target")).unwrap(),
            b"host file"
        );
    }
}

#[test]
fn corrupt_blobs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let manifest = layout.image(&[], json!({}));
    layout
        .index
        .push(named(manifest, "docker.io/library/empty:latest"));
    // Flip a byte of the config blob: its name no longer matches its content.
    let config = layout
        .blobs
        .iter_mut()
        .find(|(_, b)| b.starts_with(b"{\"architecture"))
        .unwrap();
    config.1.push(b' ');
    let err = import(&store, &layout.archive()).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn wrong_diff_id_is_rejected() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let real = Tar::default().file("a", b"a").finish();
    let claimed = Tar::default().file("b", b"b").finish();
    let manifest = layout.image(
        &[(real, claimed, "application/vnd.oci.image.layer.v1.tar")],
        json!({}),
    );
    layout
        .index
        .push(named(manifest, "docker.io/library/liar:latest"));
    let err = import(&store, &layout.archive()).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
}

/// Two images sharing their base layer, plus an empty (no-layer) image.
fn two_images(store: &ImageStore) -> (Digest, Digest) {
    let base = Tar::default().file("base", b"base").finish();
    let mut layout = Layout::default();
    let a = layout.image(
        &[
            (
                base.clone(),
                base.clone(),
                "application/vnd.oci.image.layer.v1.tar",
            ),
            plain_layer(Tar::default().file("a", b"a")),
        ],
        json!({"Cmd": ["a"]}),
    );
    let b = layout.image(
        &[
            (base.clone(), base, "application/vnd.oci.image.layer.v1.tar"),
            plain_layer(Tar::default().file("b", b"b")),
        ],
        json!({"Cmd": ["b"]}),
    );
    layout.index.push(named(a, "docker.io/library/a:latest"));
    layout.index.push(named(b, "docker.io/library/b:latest"));
    let images = import(store, &layout.archive()).unwrap();
    (images[0].id.clone(), images[1].id.clone())
}

#[test]
fn remove_deletes_only_what_no_other_image_uses() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (a, _b) = two_images(&store);
    let layers = || fs::read_dir(store.root().join("layers")).unwrap().count();
    let blobs = || {
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    assert_eq!((layers(), blobs()), (3, 7));
    let image_a = store.get("a").unwrap();
    let shared = store.lower_dirs(&image_a)[1].clone();

    let removed = store.remove("a").unwrap();
    assert_eq!(removed.id, a);
    assert_eq!((layers(), blobs()), (2, 4));
    assert!(shared.join("base").exists(), "the shared base layer stays");
    assert!(matches!(store.get("a"), Err(ImageError::NotFound(_))));

    store.remove("docker.io/library/b:latest").unwrap();
    assert_eq!((layers(), blobs()), (0, 0));
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(store.remove("b"), Err(ImageError::NotFound(_))));
}

#[test]
fn retagging_moves_the_tag() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut first = Layout::default();
    let m = first.image(&[plain_layer(Tar::default().file("v", b"1"))], json!({}));
    first.index.push(named(m, "docker.io/library/app:latest"));
    let old = import(&store, &first.archive()).unwrap().remove(0);
    let mut second = Layout::default();
    let m = second.image(&[plain_layer(Tar::default().file("v", b"2"))], json!({}));
    second.index.push(named(m, "docker.io/library/app:latest"));
    let new = import(&store, &second.archive()).unwrap().remove(0);
    assert_eq!(store.get("app").unwrap().id, new.id);
    let old_now = store.get(old.id.as_str()).unwrap();
    assert!(old_now.repo_tags.is_empty(), "the old image lost its tag");
}

#[test]
fn garbage_collection_spares_images_in_use() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (a, b) = two_images(&store);
    // Thresholds that make any real disk "full": remove everything unused.
    let policy = GcPolicy {
        high_threshold_percent: 0,
        low_threshold_percent: 0,
        min_age: Duration::ZERO,
        max_age: None,
    };
    let later = store.list().unwrap()[0].imported_at + 10;
    let in_use: HashSet<Digest> = [b.clone()].into();
    let removed = store.garbage_collect(&policy, &in_use, later).unwrap();
    assert_eq!(
        removed.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        [a]
    );
    assert_eq!(store.list().unwrap()[0].id, b);
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        2
    );
    // Default thresholds on a disk with room: nothing to do.
    let removed = store
        .garbage_collect(&GcPolicy::default(), &HashSet::new(), later)
        .unwrap();
    let usage = store.disk_usage().unwrap();
    if usage.usage_percent() < 85 {
        assert!(removed.is_empty());
    }
}

#[test]
fn mark_used_updates_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let m = layout.image(&[], json!({}));
    layout
        .index
        .push(named(m, "docker.io/library/empty:latest"));
    let image = import(&store, &layout.archive()).unwrap().remove(0);
    store.mark_used(&image.id, image.last_used + 100).unwrap();
    assert_eq!(store.get("empty").unwrap().last_used, image.last_used + 100);
}

#[test]
fn the_lock_serialises_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let held = store.lock().unwrap();
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let waiter = {
        let store = store.clone();
        let released = released.clone();
        std::thread::spawn(move || {
            started_tx.send(()).unwrap();
            // A separate open file description: flock excludes it as it would another process.
            let _lock = store.lock().unwrap();
            released.load(std::sync::atomic::Ordering::SeqCst)
        })
    };
    started_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    drop(held);
    assert!(
        waiter.join().unwrap(),
        "the second writer waited for the first"
    );
}

#[test]
fn index_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = Layout::default();
    let m = layout.image(&[], json!({"Env": ["X=1"]}));
    layout
        .index
        .push(named(m, "docker.io/library/empty:latest"));
    let id = import(&ImageStore::open(dir.path()).unwrap(), &layout.archive()).unwrap()[0]
        .id
        .clone();
    let reopened = ImageStore::open(dir.path()).unwrap();
    let image = reopened.get("empty:latest").unwrap();
    assert_eq!(image.id, id);
    assert_eq!(image.config.env, ["X=1"]);
    assert!(
        !dir.path()
            .join("images/tmp")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "no staging left"
    );
}

#[test]
fn tarballs_dropped_in_the_images_dir_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let m = layout.image(&[], json!({"Cmd": ["dropped"]}));
    layout.index.push(named(m, "docker.io/library/dropped:1"));
    fs::write(store.root().join("dropped.tar.gz"), gzip(&layout.archive())).unwrap();
    fs::write(store.root().join("notes.txt"), b"not an image").unwrap();
    let results = store.import_dropped_archives().unwrap();
    assert_eq!(results.len(), 1);
    assert!(results[0].0.ends_with("dropped.tar.gz"));
    assert_eq!(results[0].1.as_ref().unwrap()[0].config.cmd, ["dropped"]);
    assert_eq!(store.get("dropped:1").unwrap().config.cmd, ["dropped"]);
}

#[test]
fn pinned_images_are_neither_removed_nor_collected() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut layout = Layout::default();
    let m = layout.image(&[], json!({}));
    layout
        .index
        .push(named(m, "docker.io/library/pinned:latest"));
    let image = import(&store, &layout.archive()).unwrap().remove(0);
    store.pin(&image.id, "container-1").unwrap();
    store.pin(&image.id, "container-2").unwrap();
    assert!(store.pin(&image.id, "../escape").is_err());
    let err = store.remove("pinned").unwrap_err();
    assert!(
        matches!(&err, ImageError::InUse { holders, .. } if holders == &["container-1", "container-2"]),
        "{err}"
    );
    let policy = GcPolicy {
        high_threshold_percent: 0,
        low_threshold_percent: 0,
        min_age: Duration::ZERO,
        max_age: None,
    };
    let later = image.imported_at + 10;
    assert!(
        store
            .garbage_collect(&policy, &HashSet::new(), later)
            .unwrap()
            .is_empty()
    );
    store.unpin(&image.id, "container-1").unwrap();
    assert!(store.remove("pinned").is_err(), "one holder is left");
    store.unpin(&image.id, "container-2").unwrap();
    assert_eq!(
        store
            .garbage_collect(&policy, &HashSet::new(), later)
            .unwrap()
            .len(),
        1
    );
    assert!(!store.root().join("in-use").join(image.id.hex()).exists());
}
