//! Times importing and unpacking the busybox image that `scripts/build-busybox-image.sh`
//! builds (or an archive given as the first argument):
//! `cargo run -p timonel-runtime --example import_bench [ARCHIVE]`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use timonel_runtime::image::{ImageStore, ImportOptions};

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let archive = match std::env::args().nth(1) {
        Some(path) => PathBuf::from(path),
        None => {
            let archive = work.path().join("busybox.tar");
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts/build-busybox-image.sh");
            let status = Command::new(script)
                .arg(&archive)
                .status()
                .expect("run the build script");
            assert!(status.success(), "build-busybox-image.sh failed");
            archive
        }
    };
    let archive_size = std::fs::metadata(&archive).expect("archive").len();
    const ROUNDS: usize = 5;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut remove = Vec::new();
    let mut files = 0;
    for round in 0..ROUNDS {
        let store =
            ImageStore::open(&work.path().join(format!("store-{round}"))).expect("open store");
        let started = Instant::now();
        let images = store
            .import_archive(&archive, &ImportOptions::default())
            .expect("import");
        cold.push(started.elapsed());
        let started = Instant::now();
        store
            .import_archive(&archive, &ImportOptions::default())
            .expect("re-import");
        warm.push(started.elapsed());
        files = walk(&store.lower_dirs(&images[0])[0]);
        let started = Instant::now();
        store.remove(images[0].id.as_str()).expect("remove");
        remove.push(started.elapsed());
    }
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    println!(
        "archive: {} ({:.2} MB, {files} entries in its layer)",
        archive.display(),
        archive_size as f64 / 1e6
    );
    println!(
        "import + verify + unpack, empty store: {:.1} ms (median of {ROUNDS})",
        median(&mut cold)
    );
    println!(
        "re-import, layer already unpacked:     {:.1} ms",
        median(&mut warm)
    );
    println!(
        "remove (blobs and unpacked layer):     {:.1} ms",
        median(&mut remove)
    );
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    1 + if is_dir { walk(&e.path()) } else { 0 }
                })
                .sum()
        })
        .unwrap_or(0)
}
