//! Start-up failures print one clear line and exit non-zero.

use std::process::Command;

fn server(data_dir: &std::path::Path, port: u16) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_timonel"))
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run timonel")
}

fn one_line(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "server should have failed");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "expected one line, got: {stderr}"
    );
    stderr
}

#[test]
fn port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let line = one_line(&server(dir.path(), port));
    assert!(
        line.contains("cannot listen on 127.0.0.1:") && line.contains("Address already in use"),
        "{line}"
    );
}

#[test]
fn corrupt_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server/db");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(db.join("state.db"), b"this is not a database").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = one_line(&server(dir.path(), port));
    assert!(line.contains("corrupt or not a SQLite file"), "{line}");
}

#[test]
fn unusable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data dir should be: nothing can be created under it.
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line = one_line(&server(&file, port));
    assert!(line.contains("cannot create"), "{line}");
}
