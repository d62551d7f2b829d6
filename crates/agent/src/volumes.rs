//! Pod volumes materialised under `<data dir>/pods/<uid>/volumes/<name>`: emptyDir (disk or
//! a tmpfs for `medium: Memory`), hostPath, configMap, secret (on a tmpfs), downwardAPI and
//! projected. Files are written as kubelet's atomic writer lays them out: a timestamped
//! directory, a `..data` symlink to it, and one symlink per key through `..data`, so a
//! reader never sees half an update.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};
use timonel_runtime::native::BindMount;

use crate::env::{ConfigError, Sources, field_value, resource_value};

/// One file of a configMap/secret/downwardAPI/projected volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

fn check_relative(path: &str) -> Result<(), ConfigError> {
    if path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|p| p == ".." || p.starts_with(".."))
    {
        return Err(ConfigError(format!("invalid volume item path {path:?}")));
    }
    Ok(())
}

fn project_keys(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    what: &str,
) -> Result<Vec<Payload>, ConfigError> {
    match items {
        None => Ok(data
            .iter()
            .map(|(k, v)| Payload {
                path: k.clone(),
                content: v.clone(),
                mode: default_mode,
            })
            .collect()),
        Some(items) => items
            .iter()
            .map(|item| {
                check_relative(&item.path)?;
                let content = data.get(&item.key).ok_or_else(|| {
                    ConfigError(if what == "secret" {
                        format!("references non-existent secret key: {}", item.key)
                    } else {
                        format!("configmap references non-existent config key: {}", item.key)
                    })
                })?;
                Ok(Payload {
                    path: item.path.clone(),
                    content: content.clone(),
                    mode: item.mode.map(|m| m as u32).unwrap_or(default_mode),
                })
            })
            .collect(),
    }
}

/// Every file under `dir` (relative paths), recursively.
fn files_under(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let relative = prefix.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            files_under(&entry.path(), &relative, out);
        } else {
            out.push(relative);
        }
    }
}

/// True when the current `..data` of `dir` holds exactly `payload` (names, bytes, modes).
fn holds(dir: &Path, payload: &[Payload]) -> bool {
    let Ok(current) = fs::read_link(dir.join("..data")) else {
        return false;
    };
    let data = dir.join(current);
    let mut present = Vec::new();
    files_under(&data, Path::new(""), &mut present);
    let mut wanted: Vec<PathBuf> = payload.iter().map(|p| PathBuf::from(&p.path)).collect();
    present.sort();
    wanted.sort();
    present == wanted
        && payload.iter().all(|p| {
            let path = data.join(&p.path);
            fs::read(&path).is_ok_and(|bytes| bytes == p.content)
                && fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == p.mode)
        })
}

/// Writes `payload` into `dir` the atomic-writer way; nothing changes when `dir` already
/// holds it.
pub fn write_atomic(dir: &Path, payload: &[Payload]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    if holds(dir, payload) {
        return Ok(());
    }
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%f"));
    let data_dir = dir.join(&stamp);
    fs::create_dir_all(&data_dir)?;
    for file in payload {
        let target = data_dir.join(&file.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.content)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link)?;
    let old = fs::read_link(dir.join("..data")).ok();
    fs::rename(&tmp_link, dir.join("..data"))?;
    for file in payload {
        let top = file.path.split('/').next().unwrap_or(&file.path);
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    if let Some(old) = old
        && old != Path::new(&stamp)
    {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn mount_tmpfs(target: &Path, size: Option<u64>) -> std::io::Result<()> {
    use rustix::mount::{MountFlags, mount};
    if timonel_runtime::native::is_mounted(target) {
        return Ok(());
    }
    let options = match size {
        Some(bytes) => format!("mode=0755,size={bytes}"),
        None => "mode=0755".to_string(),
    };
    let options = std::ffi::CString::new(options).expect("no NUL");
    mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(options.as_c_str()),
    )
    .map_err(std::io::Error::from)
}

/// Unmounts every tmpfs under a pod's volume directory (before it is removed).
pub fn unmount_all(pod_dir: &Path) {
    let prefix = format!("{}/", pod_dir.display());
    let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = rustix::mount::unmount(t, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Materialises every volume of `pod` under `volumes_dir`; returns the host path of each.
pub async fn prepare(
    pod: &Pod,
    volumes_dir: &Path,
    sources: &mut Sources<'_>,
    node_cpus: u64,
    node_memory: u64,
) -> anyhow::Result<Result<BTreeMap<String, PathBuf>, ConfigError>> {
    let mut out = BTreeMap::new();
    let volumes: Vec<Volume> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in volumes {
        let dir = volumes_dir.join(&volume.name);
        if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            match host.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => fs::create_dir_all(&path)?,
                "FileOrCreate" if !path.exists() => {
                    if let Some(p) = path.parent() {
                        fs::create_dir_all(p)?;
                    }
                    fs::write(&path, b"")?;
                }
                "Directory" if !path.is_dir() => {
                    return Ok(Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a directory",
                        host.path
                    ))));
                }
                "File" if !path.is_file() => {
                    return Ok(Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a file",
                        host.path
                    ))));
                }
                _ => {}
            }
            out.insert(volume.name.clone(), path);
            continue;
        }
        fs::create_dir_all(&dir)?;
        if let Some(empty) = &volume.empty_dir {
            if empty.medium.as_deref() == Some("Memory") {
                let size = empty
                    .size_limit
                    .as_ref()
                    .map(crate::containers::memory_bytes);
                mount_tmpfs(&dir, size)?;
            }
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))?;
            out.insert(volume.name.clone(), dir);
            continue;
        }
        let payload = if let Some(cm) = &volume.config_map {
            let mode = cm.default_mode.unwrap_or(0o644) as u32;
            match sources.config_map(&cm.name).await? {
                Some(data) => {
                    let bytes = data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                    match project_keys(&bytes, cm.items.as_ref(), mode, "configmap") {
                        Ok(p) => p,
                        Err(e) if cm.optional == Some(true) => {
                            tracing::debug!("optional configmap volume: {}", e.0);
                            Vec::new()
                        }
                        Err(e) => return Ok(Err(e)),
                    }
                }
                None if cm.optional == Some(true) => Vec::new(),
                None => {
                    return Ok(Err(ConfigError(format!(
                        "configmap \"{}\" not found",
                        cm.name
                    ))));
                }
            }
        } else if let Some(secret) = &volume.secret {
            let name = secret.secret_name.clone().unwrap_or_default();
            let mode = secret.default_mode.unwrap_or(0o644) as u32;
            // Secrets never touch the disk.
            mount_tmpfs(&dir, None)?;
            match sources.secret_bytes(&name).await? {
                Some(data) => match project_keys(&data, secret.items.as_ref(), mode, "secret") {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                },
                None if secret.optional == Some(true) => Vec::new(),
                None => return Ok(Err(ConfigError(format!("secret \"{name}\" not found")))),
            }
        } else if let Some(downward) = &volume.downward_api {
            let mode = downward.default_mode.unwrap_or(0o644) as u32;
            match downward_payload(pod, downward.items.as_ref(), mode, node_cpus, node_memory) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            }
        } else if let Some(projected) = &volume.projected {
            let mode = projected.default_mode.unwrap_or(0o644) as u32;
            let mut files = Vec::new();
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    match sources.config_map(&cm.name).await? {
                        Some(data) => {
                            let bytes =
                                data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                            match project_keys(&bytes, cm.items.as_ref(), mode, "configmap") {
                                Ok(p) => files.extend(p),
                                Err(e) => return Ok(Err(e)),
                            }
                        }
                        None if cm.optional == Some(true) => {}
                        None => {
                            return Ok(Err(ConfigError(format!(
                                "configmap \"{}\" not found",
                                cm.name
                            ))));
                        }
                    }
                }
                if let Some(secret) = &source.secret {
                    match sources.secret_bytes(&secret.name).await? {
                        Some(data) => {
                            match project_keys(&data, secret.items.as_ref(), mode, "secret") {
                                Ok(p) => files.extend(p),
                                Err(e) => return Ok(Err(e)),
                            }
                        }
                        None if secret.optional == Some(true) => {}
                        None => {
                            return Ok(Err(ConfigError(format!(
                                "secret \"{}\" not found",
                                secret.name
                            ))));
                        }
                    }
                }
                if let Some(downward) = &source.downward_api {
                    match downward_payload(
                        pod,
                        downward.items.as_ref(),
                        mode,
                        node_cpus,
                        node_memory,
                    ) {
                        Ok(p) => files.extend(p),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                if let Some(token) = &source.service_account_token {
                    // The token in place is kept until 80 % of its lifetime, as kubelet's
                    // token manager does.
                    let current = fs::read(dir.join("..data").join(&token.path))
                        .ok()
                        .filter(|t| token_is_fresh(t, chrono::Utc::now().timestamp()));
                    let content = match current {
                        Some(kept) => kept,
                        None => service_account_token(
                            pod,
                            sources,
                            token.expiration_seconds,
                            token.audience.clone(),
                        )
                        .await
                        .into_bytes(),
                    };
                    files.push(Payload {
                        path: token.path.clone(),
                        content,
                        mode,
                    });
                }
                if let Some(ctb) = &source.cluster_trust_bundle {
                    tracing::debug!(
                        "clusterTrustBundle {:?} projection is not supported",
                        ctb.name
                    );
                }
            }
            files
        } else if let Some(claim) = &volume.persistent_volume_claim {
            match claimed_path(sources, &claim.claim_name).await? {
                Ok(path) => {
                    let _ = fs::remove_dir(&dir);
                    out.insert(volume.name.clone(), path);
                    continue;
                }
                Err(e) => return Ok(Err(e)),
            }
        } else {
            // Kinds a single node cannot provide (cloud disks, NFS, …) mount as empty dirs
            // would hide data: refuse them.
            return Ok(Err(ConfigError(format!(
                "volume {:?}: this volume type is not supported",
                volume.name
            ))));
        };
        write_atomic(&dir, &payload)?;
        out.insert(volume.name.clone(), dir);
    }
    Ok(Ok(out))
}

/// The host directory behind a claim: its bound volume's hostPath (created on first use, as
/// the local-path provisioner's volumes are) or local path. A claim not bound yet is a
/// retryable mount failure, as kubelet's volume manager waits for it.
async fn claimed_path(
    sources: &Sources<'_>,
    claim_name: &str,
) -> anyhow::Result<Result<PathBuf, ConfigError>> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let claims: kube::Api<PersistentVolumeClaim> =
        kube::Api::namespaced(sources.client.clone(), sources.namespace);
    let Some(claim) = claims.get_opt(claim_name).await? else {
        return Ok(Err(ConfigError(format!(
            "persistentvolumeclaim \"{claim_name}\" not found"
        ))));
    };
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let (Some(volume_name), Some("Bound")) = (bound, phase) else {
        return Ok(Err(ConfigError(format!(
            "unbound PersistentVolumeClaim \"{claim_name}\": waiting for it to be bound"
        ))));
    };
    let volumes: kube::Api<PersistentVolume> = kube::Api::all(sources.client.clone());
    let Some(volume) = volumes.get_opt(&volume_name).await? else {
        return Ok(Err(ConfigError(format!(
            "persistentvolume \"{volume_name}\" of claim \"{claim_name}\" not found"
        ))));
    };
    let spec = volume.spec.unwrap_or_default();
    if let Some(host) = spec.host_path {
        let path = PathBuf::from(&host.path);
        if !path.is_dir() {
            fs::create_dir_all(&path)?;
            // Any user of the pod may write, as local-path-provisioner's volumes allow.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777))?;
        }
        return Ok(Ok(path));
    }
    if let Some(local) = spec.local {
        let path = PathBuf::from(&local.path);
        if !path.exists() {
            return Ok(Err(ConfigError(format!(
                "local volume {volume_name}: path {} does not exist",
                local.path
            ))));
        }
        return Ok(Ok(path));
    }
    Ok(Err(ConfigError(format!(
        "persistentvolume {volume_name}: only hostPath and local volumes can be mounted on this node"
    ))))
}

/// The local-path volume directories under `storage_dir` with the volume each belongs to:
/// `pvc-<uid>_<namespace>_<claim>` holds volume `pvc-<uid>`. Nothing else there is touched.
pub fn local_path_dirs(storage_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(storage_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let volume = name.split('_').next().filter(|v| v.starts_with("pvc-"))?;
            Some((volume.to_string(), entry.path()))
        })
        .collect()
}

fn downward_payload(
    pod: &Pod,
    items: Option<&Vec<k8s_openapi::api::core::v1::DownwardAPIVolumeFile>>,
    default_mode: u32,
    node_cpus: u64,
    node_memory: u64,
) -> Result<Vec<Payload>, ConfigError> {
    let mut out = Vec::new();
    for item in items.into_iter().flatten() {
        check_relative(&item.path)?;
        let content = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path)?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let container: Option<&Container> = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name));
            let Some(container) = container else {
                return Err(ConfigError(format!(
                    "resourceFieldRef: container {name:?} not found"
                )));
            };
            resource_value(
                container,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                node_cpus,
                node_memory,
            )?
        } else {
            String::new()
        };
        out.push(Payload {
            path: item.path.clone(),
            content: content.into_bytes(),
            mode: item.mode.map(|m| m as u32).unwrap_or(default_mode),
        });
    }
    Ok(out)
}

/// A token for the pod's service account through the TokenRequest API, bound to the pod;
/// empty (with a warning) when the server does not offer it.
/// True while a JWT is within the first 80 % of its lifetime (`iat` to `exp`).
fn token_is_fresh(token: &[u8], now: i64) -> bool {
    use base64::Engine as _;
    let Some(claims) = std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.split('.').nth(1))
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
    else {
        return false;
    };
    match (claims["iat"].as_i64(), claims["exp"].as_i64()) {
        (Some(iat), Some(exp)) if exp > iat => now < iat + (exp - iat) * 8 / 10,
        _ => false,
    }
}

async fn service_account_token(
    pod: &Pod,
    sources: &Sources<'_>,
    expiration: Option<i64>,
    audience: Option<String>,
) -> String {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audience.map(|a| vec![a]).unwrap_or_default(),
            "expirationSeconds": expiration.unwrap_or(3607),
            "boundObjectRef": {
                "apiVersion": "v1", "kind": "Pod",
                "name": pod.metadata.name, "uid": pod.metadata.uid,
            },
        },
    });
    let path = format!(
        "/api/v1/namespaces/{}/serviceaccounts/{sa}/token",
        sources.namespace
    );
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    let Ok(request) = request else {
        return String::new();
    };
    match sources.client.request::<serde_json::Value>(request).await {
        Ok(reply) => reply["status"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        Err(e) => {
            tracing::warn!("service account token for pod {:?}: {e}", pod.metadata.name);
            String::new()
        }
    }
}

/// The bind mounts of a container's `volumeMounts`.
pub fn mounts_for(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<BindMount>, ConfigError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let Some(source) = volumes.get(&m.name) else {
            return Err(ConfigError(format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, container.name
            )));
        };
        let mut source = source.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            check_relative(sub)?;
            source = source.join(sub);
            if !source.exists() {
                let _ = fs::create_dir_all(&source);
            }
        }
        out.push(BindMount {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_path_directories_name_their_volume() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["pvc-a_ns_data", "keep-me"] {
            fs::create_dir_all(dir.path().join(name)).unwrap();
        }
        assert_eq!(
            local_path_dirs(dir.path()),
            vec![("pvc-a".to_string(), dir.path().join("pvc-a_ns_data"))]
        );
    }

    #[test]
    fn tokens_are_renewed_after_80_percent_of_their_lifetime() {
        use base64::Engine as _;
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"iat":1000,"exp":2000}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.sig");
        assert!(token_is_fresh(token.as_bytes(), 1500));
        assert!(!token_is_fresh(token.as_bytes(), 1800));
        assert!(!token_is_fresh(b"not a token", 1500));
    }

    #[test]
    fn the_atomic_writer_leaves_unchanged_contents_alone() {
        let dir = tempfile::tempdir().unwrap();
        let payload = |content: &str| {
            vec![Payload {
                path: "key".into(),
                content: content.as_bytes().to_vec(),
                mode: 0o644,
            }]
        };
        write_atomic(dir.path(), &payload("v1")).unwrap();
        let first = fs::read_link(dir.path().join("..data")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        write_atomic(dir.path(), &payload("v1")).unwrap();
        assert_eq!(fs::read_link(dir.path().join("..data")).unwrap(), first);
        write_atomic(dir.path(), &payload("v2")).unwrap();
        assert_ne!(fs::read_link(dir.path().join("..data")).unwrap(), first);
        assert_eq!(fs::read_to_string(dir.path().join("key")).unwrap(), "v2");
    }

    #[test]
    fn atomic_writer_layout_and_update() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![Payload {
            path: "key".into(),
            content: b"v1".to_vec(),
            mode: 0o644,
        }];
        write_atomic(dir.path(), &files).unwrap();
        assert_eq!(fs::read(dir.path().join("key")).unwrap(), b"v1");
        assert!(fs::read_link(dir.path().join("..data")).is_ok());
        let files = vec![Payload {
            path: "key".into(),
            content: b"v2".to_vec(),
            mode: 0o600,
        }];
        write_atomic(dir.path(), &files).unwrap();
        assert_eq!(fs::read(dir.path().join("key")).unwrap(), b"v2");
        let stamped: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .collect();
        assert_eq!(stamped.len(), 1, "the old payload directory is gone");
    }

    #[test]
    fn items_select_and_rename_keys_and_refuse_escapes() {
        let mut data = BTreeMap::new();
        data.insert("a".to_string(), b"1".to_vec());
        data.insert("b".to_string(), b"2".to_vec());
        let items = vec![KeyToPath {
            key: "a".into(),
            path: "dir/x".into(),
            mode: None,
        }];
        let p = project_keys(&data, Some(&items), 0o644, "configmap").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "dir/x");
        let bad = vec![KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(project_keys(&data, Some(&bad), 0o644, "configmap").is_err());
        let missing = vec![KeyToPath {
            key: "zz".into(),
            path: "x".into(),
            mode: None,
        }];
        assert!(
            project_keys(&data, Some(&missing), 0o644, "secret")
                .unwrap_err()
                .0
                .contains("secret key")
        );
    }

    #[test]
    fn mounts_resolve_volumes_and_sub_paths() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true, "subPath": "s"}]
        }))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut volumes = BTreeMap::new();
        volumes.insert("data".to_string(), dir.path().to_path_buf());
        let m = mounts_for(&c, &volumes).unwrap();
        assert_eq!(m[0].source, dir.path().join("s"));
        assert!(m[0].read_only);
        assert!(mounts_for(&c, &BTreeMap::new()).is_err());
    }
}
