//! Nothing acknowledged is lost: SIGKILL the server during a burst of writes, restart it on the
//! same data dir, and find every write that was answered 201.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(data_dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_timonel"))
        .args([
            "server",
            "--disable-agent",
            "--disable-scheduler",
            "--disable-controller-manager",
            "--bind-address",
            "127.0.0.1",
        ])
        .arg("--https-listen-port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--write-kubeconfig")
        .arg(data_dir.join("kubeconfig.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn timonel server")
}

async fn wait_ready(data_dir: &Path, port: u16) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kubeconfig = data_dir.join("kubeconfig.yaml");
        if kubeconfig.exists()
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        {
            let config = Config::from_custom_kubeconfig(
                Kubeconfig::read_from(&kubeconfig).unwrap(),
                &KubeConfigOptions::default(),
            )
            .await
            .unwrap();
            let client = Client::try_from(config).unwrap();
            let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
            if client.request_text(req).await.is_ok() {
                return client;
            }
        }
        assert!(
            Instant::now() < deadline,
            "server did not become ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": name}}))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = spawn_server(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..16 {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                match api.create(&PostParams::default(), &configmap(&name)).await {
                    Ok(_) => acknowledged.lock().unwrap().push(name),
                    Err(_) => break,
                }
            }
        }));
    }
    // Let the burst run, then kill the server mid-flight.
    while acknowledged.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let mut server = spawn_server(dir.path(), port);
    let client = wait_ready(dir.path(), port).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let stored: std::collections::HashSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(*n))
        .collect();
    server.kill().ok();
    server.wait().ok();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(acknowledged.len() >= 500);
}
