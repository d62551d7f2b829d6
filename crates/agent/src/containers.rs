//! From a pod's container to the runtime's [`ContainerSpec`]: command and args against the
//! image's entrypoint and cmd, environment (with `$(VAR)` expansion), user, security
//! context and resources, as kubelet and containerd's CRI plugin do.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use timonel_runtime::image::ImageConfig;
use timonel_runtime::native::ContainerSpec;

/// Upstream's rule: `command` replaces the entrypoint and drops the image's cmd; `args`
/// replaces cmd. Both are expanded with `$(VAR)` references to the container's env.
pub fn command_line(
    container: &Container,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Vec<String> {
    let expand = |s: &String| expand_references(s, env);
    match (&container.command, &container.args) {
        (Some(command), Some(args)) if !command.is_empty() => {
            command.iter().chain(args.iter()).map(expand).collect()
        }
        (Some(command), _) if !command.is_empty() => command.iter().map(expand).collect(),
        (_, Some(args)) if !args.is_empty() => image
            .entrypoint
            .iter()
            .cloned()
            .chain(args.iter().map(expand))
            .collect(),
        _ => image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect(),
    }
}

/// Expands `$(NAME)` with the value of NAME from `env`; `$$(NAME)` escapes to a literal
/// `$(NAME)`; unknown references stay as written (upstream's `expansion.Expand`).
pub fn expand_references(input: &str, env: &[(String, String)]) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match env.iter().rev().find(|(k, _)| k == name) {
                            Some((_, value)) => out.push_str(value),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Millicores of a CPU quantity (`500m`, `2`, `0.5`).
pub fn cpu_millis(q: &Quantity) -> u64 {
    let s = q.0.trim();
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<f64>().map(|v| v.ceil() as u64).unwrap_or(0);
    }
    s.parse::<f64>()
        .map(|v| (v * 1000.0).ceil() as u64)
        .unwrap_or(0)
}

/// Bytes of a memory quantity (`64Mi`, `1G`, `128974848`, `129e6`).
pub fn memory_bytes(q: &Quantity) -> u64 {
    let s = q.0.trim();
    let suffixes: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = s.strip_suffix(suffix) {
            return number
                .parse::<f64>()
                .map(|v| (v * factor) as u64)
                .unwrap_or(0);
        }
    }
    if let Some(m) = s.strip_suffix('m') {
        return m.parse::<f64>().map(|v| (v / 1000.0) as u64).unwrap_or(0);
    }
    s.parse::<f64>().map(|v| v as u64).unwrap_or(0)
}

/// The user and group the container runs as: the security context wins over the image's
/// `USER` (numeric `uid[:gid]` only: names would need the image's /etc/passwd).
pub fn user_of(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    passwd: Option<&str>,
) -> Result<(u32, u32), String> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    let (image_uid, image_gid) = parse_image_user(&image.user, passwd)?;
    let uid = run_as_user.map(|u| u as u32).unwrap_or(image_uid);
    let gid = run_as_group.map(|g| g as u32).unwrap_or(image_gid);
    if non_root && uid == 0 {
        return Err(if run_as_user.is_some() {
            "container's runAsUser breaks non-root policy".to_string()
        } else {
            "container has runAsNonRoot and image will run as root".to_string()
        });
    }
    Ok((uid, gid))
}

fn parse_image_user(user: &str, passwd: Option<&str>) -> Result<(u32, u32), String> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let lookup = |name: &str| -> Option<(u32, u32)> {
        passwd?.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    let (uid, default_gid) = match u.parse::<u32>() {
        Ok(uid) => (uid, lookup_by_uid(passwd, uid).unwrap_or(uid)),
        Err(_) => lookup(u).ok_or_else(|| {
            format!("unable to find user {u}: no matching entries in passwd file")
        })?,
    };
    let gid = match g {
        Some(g) => g
            .parse::<u32>()
            .map_err(|_| format!("unable to find group {g}"))?,
        None => default_gid,
    };
    Ok((uid, gid))
}

fn lookup_by_uid(passwd: Option<&str>, uid: u32) -> Option<u32> {
    passwd?.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 3 && fields[2].parse::<u32>().ok() == Some(uid))
            .then(|| fields[3].parse().ok())
            .flatten()
    })
}

/// Fills the parts of `spec` that come from the container's security context and
/// resources.
/// `node_memory` is the node's memory in bytes (Burstable OOM scores are relative to it).
pub fn apply_security_and_resources(
    pod: &Pod,
    container: &Container,
    node_memory: u64,
    spec: &mut ContainerSpec,
) {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    if let Some(groups) = pod_sc.and_then(|s| s.supplemental_groups.as_ref()) {
        spec.additional_gids = groups.iter().map(|g| *g as u32).collect();
    }
    if let Some(fs_group) = pod_sc.and_then(|s| s.fs_group) {
        spec.additional_gids.push(fs_group as u32);
    }
    let sc = container.security_context.as_ref();
    spec.privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    spec.read_only_rootfs = sc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    spec.no_new_privileges = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);
    if let Some(caps) = sc.and_then(|s| s.capabilities.as_ref()) {
        spec.capabilities_add = caps.add.clone().unwrap_or_default();
        spec.capabilities_drop = caps.drop.clone().unwrap_or_default();
    }
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_sc.and_then(|s| s.seccomp_profile.as_ref()));
    spec.seccomp_runtime_default = seccomp
        .map(|p| p.type_ == "RuntimeDefault")
        .unwrap_or(false);

    let resources = container.resources.as_ref();
    let requests: BTreeMap<String, Quantity> = resources
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    let limits: BTreeMap<String, Quantity> =
        resources.and_then(|r| r.limits.clone()).unwrap_or_default();
    // A limit without a request requests the limit (the API server's defaulting).
    spec.cpu_request_millis = requests
        .get("cpu")
        .or_else(|| limits.get("cpu"))
        .map(cpu_millis)
        .unwrap_or(0);
    spec.cpu_limit_millis = limits.get("cpu").map(cpu_millis);
    spec.memory_limit_bytes = limits.get("memory").map(memory_bytes);
    spec.oom_score_adj = oom_score_adj(pod, container, node_memory);
}

/// kubelet's OOM score policy by QoS class (Guaranteed −997, BestEffort 1000, Burstable in
/// between by memory request); the runtime clamps negatives to 0 where the host forbids them.
fn oom_score_adj(pod: &Pod, container: &Container, node_memory: u64) -> i32 {
    match qos_class(pod) {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("memory"))
                .map(memory_bytes)
                .unwrap_or(0);
            let capacity = node_memory.max(1);
            let score = 1000 - (1000 * request / capacity) as i32;
            score.clamp(2, 999)
        }
    }
}

/// The pod's QoS class as upstream's `GetPodQOS`: the one the API server recorded in its
/// status at creation, else computed from the spec.
pub fn qos_class(pod: &Pod) -> &str {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some(recorded) if !recorded.is_empty() => recorded,
        _ => computed_qos_class(pod),
    }
}

/// upstream's `ComputePodQOS`.
fn computed_qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return "BestEffort";
    };
    let containers: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        for resource in ["cpu", "memory"] {
            let request = requests.get(resource);
            let limit = limits.get(resource);
            if request.is_some() || limit.is_some() {
                any = true;
            }
            match (request, limit) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> Container {
        serde_json::from_value(json).unwrap()
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            ..ImageConfig::default()
        }
    }

    #[test]
    fn command_and_args_follow_upstream_rules() {
        let env = vec![("WHO".to_string(), "world".to_string())];
        let c = container(serde_json::json!({"name": "c"}));
        assert_eq!(command_line(&c, &image(), &env), ["/entry", "default"]);
        let c = container(serde_json::json!({"name": "c", "args": ["hi $(WHO)"]}));
        assert_eq!(command_line(&c, &image(), &env), ["/entry", "hi world"]);
        let c = container(serde_json::json!({"name": "c", "command": ["sh"]}));
        assert_eq!(command_line(&c, &image(), &env), ["sh"]);
        let c = container(serde_json::json!({"name": "c", "command": ["sh"], "args": ["-c", "x"]}));
        assert_eq!(command_line(&c, &image(), &env), ["sh", "-c", "x"]);
    }

    #[test]
    fn references_expand_escape_and_stay_when_unknown() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(
            expand_references("$(A)-$(B)-$$(A)-$", &env),
            "1-$(B)-$(A)-$"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis(&Quantity("250m".into())), 250);
        assert_eq!(cpu_millis(&Quantity("2".into())), 2000);
        assert_eq!(cpu_millis(&Quantity("0.5".into())), 500);
        assert_eq!(memory_bytes(&Quantity("64Mi".into())), 64 << 20);
        assert_eq!(memory_bytes(&Quantity("1G".into())), 1_000_000_000);
        assert_eq!(memory_bytes(&Quantity("1000".into())), 1000);
    }

    #[test]
    fn users_from_image_and_security_context() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [], "securityContext": {"runAsUser": 1000}}
        }))
        .unwrap();
        let c = container(serde_json::json!({"name": "c"}));
        assert_eq!(user_of(&pod, &c, &image(), None).unwrap(), (1000, 0));
        let mut img = image();
        img.user = "nobody".into();
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n";
        let plain: Pod =
            serde_json::from_value(serde_json::json!({"spec": {"containers": []}})).unwrap();
        assert_eq!(
            user_of(&plain, &c, &img, Some(passwd)).unwrap(),
            (65534, 65534)
        );
        let strict =
            container(serde_json::json!({"name": "c", "securityContext": {"runAsNonRoot": true}}));
        assert!(
            user_of(&plain, &strict, &image(), None)
                .unwrap_err()
                .contains("runAsNonRoot")
        );
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "spec": {"containers": [{"name": "c", "resources": resources}]}
            }))
            .unwrap()
        };
        assert_eq!(qos_class(&pod(serde_json::json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(
                serde_json::json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(serde_json::json!({"requests": {"memory": "1Gi"}}))),
            "Burstable"
        );
    }
}
