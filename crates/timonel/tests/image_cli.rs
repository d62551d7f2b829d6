//! `timonel image import|ls|rm` on the busybox image `scripts/build-busybox-image.sh` builds
//! from Debian's busybox-static. Needs root (layers keep their owners), as CI runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// This package's directory, read at run time: cargo may reuse a test binary that another
/// checkout sharing the target dir built, and the path compiled into it may be gone.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn repo_root() -> PathBuf {
    manifest_dir().join("../..")
}

fn timonel(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_timonel"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run timonel")
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn build_busybox(dir: &Path) -> PathBuf {
    let archive = dir.join("busybox.tar");
    let status = Command::new(repo_root().join("scripts/build-busybox-image.sh"))
        .arg(&archive)
        .status()
        .expect("run scripts/build-busybox-image.sh");
    assert!(status.success(), "build-busybox-image.sh failed");
    archive
}

#[test]
fn import_list_run_and_remove_busybox() {
    assert!(
        rustix_is_root(),
        "this test needs root (image layers keep their owners): run it as root, as CI does"
    );
    let work = tempfile::tempdir().unwrap();
    let archive = build_busybox(work.path());
    let data_dir = work.path().join("agent");
    let archive_arg = archive.to_str().unwrap();

    let imported = ok(timonel(&["image", "import", archive_arg], &data_dir));
    assert!(
        imported.starts_with("Imported docker.io/library/busybox:latest (sha256:"),
        "{imported}"
    );

    let listing = ok(timonel(&["image", "ls"], &data_dir));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "docker.io/library/busybox");
    assert_eq!(row[1], "latest");
    assert_eq!(row[2].len(), 13);
    assert!(row[3].ends_with("MB"), "{listing}");

    // The unpacked layer is a working root filesystem.
    let layers = data_dir.join("images/layers");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let output = Command::new("chroot")
        .arg(layer.join("fs"))
        .args([
            "/bin/sh",
            "-c",
            "echo hello from $(basename $(readlink /bin/ls))",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello from busybox\n"
    );

    // A second import of the same archive changes nothing.
    ok(timonel(&["image", "import", archive_arg], &data_dir));
    assert_eq!(ok(timonel(&["image", "ls"], &data_dir)), listing);

    let removed = ok(timonel(&["image", "rm", "busybox"], &data_dir));
    assert!(
        removed.starts_with("Deleted: docker.io/library/busybox:latest"),
        "{removed}"
    );
    assert_eq!(ok(timonel(&["image", "ls"], &data_dir)).lines().count(), 1);
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0);

    let missing = timonel(&["image", "rm", "busybox"], &data_dir);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("not found"), "{stderr}");
}

fn rustix_is_root() -> bool {
    // `id -u` avoids a dev-dependency only for this check.
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}
