//! Admission and kind-specific registry behaviour: namespace lifecycle, ClusterIP and NodePort
//! allocation, CRD registration, pod binding and eviction, access reviews.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Value, json};
use timonel_api::registry::{ResourceInfo, crd_resources};
use timonel_api::status::{ApiError, Cause};
use timonel_api::validation::{ErrorType, FieldError};

use crate::body::{self, meta_mut, name_of};
use crate::rest::Request;
use crate::server::{Reply, State};

/// Service CIDR 10.43.0.0/16; .1 is the `kubernetes` Service.
const SERVICE_NET: [u8; 2] = [10, 43];
pub const KUBERNETES_SERVICE_IP: &str = "10.43.0.1";
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

fn namespace_key(name: &str) -> String {
    format!("/registry/core/namespaces/{name}")
}

/// Upstream's NamespaceLifecycle admission: the namespace must exist and not be terminating.
pub fn require_namespace(state: &State, namespace: &str) -> Result<(), ApiError> {
    let Some(ns) = state.cache.get(&namespace_key(namespace)) else {
        return Err(ApiError::not_found(
            timonel_api::status::Resource {
                group: "",
                plural: "namespaces",
            },
            namespace,
        ));
    };
    if ns.value()["metadata"]["deletionTimestamp"].is_string() {
        return Err(ApiError::forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        )));
    }
    Ok(())
}

/// Kind-specific create-time preparation (upstream's PrepareForCreate).
pub fn prepare_create(state: &State, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let drop_status = |obj: &mut Value| {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    };
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            service_account(state, obj)?;
            resolve_priority(state, obj)?;
            add_default_tolerations(&state.admission, obj);
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "Namespace") => {
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "PersistentVolumeClaim") => {
            default_storage_class(state, obj);
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "PersistentVolume") => {
            obj["status"] = json!({"phase": "Pending"});
        }
        ("", "Service") => {
            obj["status"] = json!({"loadBalancer": {}});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let names = obj["spec"]["names"].clone();
            let storage: Vec<Value> = obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect();
            let now = body::now_rfc3339();
            let mut accepted = names.clone();
            if accepted["singular"].is_null() {
                accepted["singular"] =
                    json!(names["kind"].as_str().unwrap_or_default().to_lowercase());
            }
            if accepted["listKind"].is_null() {
                accepted["listKind"] = json!(format!(
                    "{}List",
                    names["kind"].as_str().unwrap_or_default()
                ));
            }
            obj["status"] = json!({
                "acceptedNames": accepted,
                "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            });
        }
        ("batch", "Job") => {
            // Upstream's Job strategy: a selector and pod labels unique to this Job.
            let uid = obj["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            timonel_api::defaults::job_selector_defaults(obj, &uid);
            drop_status(obj);
        }
        _ if info.has_subresource("status") && info.kind != "Node" => drop_status(obj),
        _ => {}
    }
    Ok(())
}

/// Where the ServiceAccount admission mounts a pod's API credentials.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Upstream's ServiceAccount admission: the pod runs as `default` unless it names an account
/// (which must exist), and, unless `automountServiceAccountToken` is false on the pod or the
/// account, every container gets the `kube-api-access-…` projected volume (a bound token,
/// `kube-root-ca.crt`, the namespace) at [`SERVICE_ACCOUNT_MOUNT_PATH`]. Mirror pods are left
/// alone. A missing `default` account is not an error here: the ServiceAccount controller
/// creates it moments after its namespace, and refusing pods meanwhile would only make every
/// client retry.
fn service_account(state: &State, pod: &mut Value) -> Result<(), ApiError> {
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Ok(());
    }
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = pod["spec"]["serviceAccountName"]
        .as_str()
        .or(pod["spec"]["serviceAccount"].as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    pod["spec"]["serviceAccountName"] = json!(name);
    pod["spec"]["serviceAccount"] = json!(name);
    let account = state
        .cache
        .get(&format!(
            "/registry/core/serviceaccounts/{namespace}/{name}"
        ))
        .map(|a| a.value());
    if account.is_none() && name != "default" {
        return Err(ApiError::forbidden(format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        )));
    }
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| {
            account
                .as_ref()
                .and_then(|a| a["automountServiceAccountToken"].as_bool())
        })
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    const SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| SUFFIX_CHARS[rand::random_range(0..SUFFIX_CHARS.len())] as char)
        .collect();
    let volume_name = format!("kube-api-access-{suffix}");
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for container in containers {
            let mounts = &mut container["volumeMounts"];
            let has_own = mounts
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == SERVICE_ACCOUNT_MOUNT_PATH);
            if has_own {
                continue;
            }
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            if let Some(list) = mounts.as_array_mut() {
                list.push(json!({
                    "name": volume_name,
                    "readOnly": true,
                    "mountPath": SERVICE_ACCOUNT_MOUNT_PATH,
                }));
                mounted = true;
            }
        }
    }
    if mounted {
        let volume = json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        });
        let volumes = &mut pod["spec"]["volumes"];
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        if let Some(list) = volumes.as_array_mut() {
            list.push(volume);
        }
    }
    Ok(())
}

/// Settings of the admission plugins that take flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionOptions {
    /// DefaultTolerationSeconds: `--default-not-ready-toleration-seconds`.
    pub default_not_ready_toleration_seconds: i64,
    /// DefaultTolerationSeconds: `--default-unreachable-toleration-seconds`.
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for AdmissionOptions {
    fn default() -> Self {
        Self {
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
        }
    }
}

const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream's DefaultTolerationSeconds admission: a pod that does not tolerate the not-ready
/// and unreachable NoExecute taints gets tolerations for them, bounded in time, so that it is
/// evicted from a failed node after that long rather than at once.
fn add_default_tolerations(options: &AdmissionOptions, pod: &mut Value) {
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // A toleration with an empty key (or effect) covers every key (or effect).
    let covers = |key: &str| {
        tolerations.iter().any(|t| {
            let t_key = t["key"].as_str().unwrap_or_default();
            let t_effect = t["effect"].as_str().unwrap_or_default();
            (t_key == key || t_key.is_empty()) && (t_effect == "NoExecute" || t_effect.is_empty())
        })
    };
    let mut added = Vec::new();
    if !covers(TAINT_NOT_READY) {
        added.push(
            json!({"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": options.default_not_ready_toleration_seconds}),
        );
    }
    if !covers(TAINT_UNREACHABLE) {
        added.push(
            json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": options.default_unreachable_toleration_seconds}),
        );
    }
    if added.is_empty() || !pod["spec"].is_object() {
        return;
    }
    let mut all = tolerations;
    all.extend(added);
    pod["spec"]["tolerations"] = Value::Array(all);
}

/// The two classes every cluster has (upstream creates them at start).
const SYSTEM_PRIORITIES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// Upstream's Priority admission: `priorityClassName` (or the global default class) sets
/// `spec.priority` and `spec.preemptionPolicy`; an unknown class is refused.
/// Upstream's DefaultStorageClass admission: a claim that names no class (the field absent,
/// not `""`) gets the default one; with several defaults, the newest.
fn default_storage_class(state: &State, claim: &mut Value) {
    if !claim["spec"]["storageClassName"].is_null() {
        return;
    }
    let (classes, _, _) = state.cache.list(
        "/registry/storage.k8s.io/storageclasses/",
        None,
        |_| true,
        0,
    );
    let default = classes
        .iter()
        .map(|(_, c)| c.value())
        .filter(|c| {
            let annotations = &c["metadata"]["annotations"];
            annotations["storageclass.kubernetes.io/is-default-class"] == "true"
                || annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true"
        })
        .max_by(|a, b| {
            let created = |c: &Value| {
                c["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| name_of(b).cmp(name_of(a)))
        });
    if let Some(class) = default
        && claim["spec"].is_object()
    {
        claim["spec"]["storageClassName"] = json!(name_of(&class));
    }
}

fn resolve_priority(state: &State, pod: &mut Value) -> Result<(), ApiError> {
    let (classes, _, _) = state.cache.list(
        "/registry/scheduling.k8s.io/priorityclasses/",
        None,
        |_| true,
        0,
    );
    let classes: Vec<Value> = classes.iter().map(|(_, c)| c.value()).collect();
    let requested = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let class = if requested.is_empty() {
        classes
            .iter()
            .find(|c| c["globalDefault"].as_bool() == Some(true))
    } else {
        classes.iter().find(|c| name_of(c) == requested)
    };
    let (name, value, policy) = match class {
        Some(c) => (
            name_of(c).to_string(),
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"].as_str().map(str::to_string),
        ),
        None if requested.is_empty() => return Ok(()),
        None => match SYSTEM_PRIORITIES.iter().find(|(n, _)| *n == requested) {
            Some((n, v)) => (n.to_string(), *v, None),
            None => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{}\" is forbidden: no PriorityClass with name {requested} was found",
                    name_of(pod)
                )));
            }
        },
    };
    let spec = &mut pod["spec"];
    spec["priorityClassName"] = json!(name);
    spec["priority"] = json!(value);
    if let Some(policy) = policy {
        spec["preemptionPolicy"] = json!(policy);
    }
    Ok(())
}

/// Upstream's QoS class of a pod spec.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let requests = &c["resources"]["requests"];
        let limits = &c["resources"]["limits"];
        for resource in ["cpu", "memory"] {
            let req = requests.get(resource);
            let lim = limits.get(resource);
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
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

/// Validation that needs the server's state (beyond the pure per-kind rules).
pub fn validate_extra(
    state: &State,
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(old) = old
        && old["metadata"]["deletionTimestamp"].is_string()
    {
        let before: Vec<&Value> = old["metadata"]["finalizers"]
            .as_array()
            .map(|f| f.iter().collect())
            .unwrap_or_default();
        let added: Vec<String> = obj["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !before.contains(f))
            .map(|f| format!("{:?}", f.as_str().unwrap_or_default()))
            .collect();
        if !added.is_empty() {
            errors.push(FieldError {
                field: "metadata.finalizers".into(),
                reason: ErrorType::FieldValueForbidden,
                message: format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.join(", ")
                ),
            });
        }
    }
    if info.group == "apiextensions.k8s.io"
        && info.kind == "CustomResourceDefinition"
        && old.is_none()
    {
        let group = obj["spec"]["group"].as_str().unwrap_or_default();
        let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
        let taken = state
            .registry
            .snapshot()
            .iter()
            .any(|r| r.group == group && r.plural == plural && r.custom.is_none());
        if taken {
            errors.push(FieldError {
                field: "spec.names.plural".into(),
                reason: ErrorType::FieldValueInvalid,
                message: format!(
                    "Invalid value: \"{plural}\": is already in use by a built-in resource"
                ),
            });
        }
    }
    errors
}

fn used_cluster_ips(state: &State) -> BTreeSet<String> {
    let (services, _, _) = state
        .cache
        .list("/registry/core/services/", None, |_| true, 0);
    services
        .iter()
        .flat_map(|(_, s)| {
            s.value()["spec"]["clusterIPs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .chain(std::iter::once(s.value()["spec"]["clusterIP"].clone()))
        })
        .filter_map(|ip| ip.as_str().map(str::to_string))
        .collect()
}

fn used_node_ports(state: &State) -> BTreeSet<i64> {
    let (services, _, _) = state
        .cache
        .list("/registry/core/services/", None, |_| true, 0);
    services
        .iter()
        .flat_map(|(_, s)| {
            s.value()["spec"]["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

/// Allocates a Service's ClusterIP and NodePorts (upstream does this in the service registry).
pub async fn allocate(
    state: &State,
    info: &ResourceInfo,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if !(info.group.is_empty() && info.kind == "Service") {
        return Ok(());
    }
    let _guard = state.allocation_lock.lock().await;
    let name = name_of(obj).to_string();
    let spec = &mut obj["spec"];
    let service_type = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if service_type != "ExternalName" {
        let requested = spec["clusterIP"].as_str().unwrap_or_default().to_string();
        let used = used_cluster_ips(state);
        let ip = match requested.as_str() {
            "None" => "None".to_string(),
            "" => {
                let candidate = (2u32..65534).find_map(|n| {
                    let ip = Ipv4Addr::new(
                        SERVICE_NET[0],
                        SERVICE_NET[1],
                        (n >> 8) as u8,
                        (n & 0xff) as u8,
                    )
                    .to_string();
                    (!used.contains(&ip)).then_some(ip)
                });
                candidate.ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?
            }
            ip => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| invalid_ip(&name, ip))?;
                let octets = parsed.octets();
                if octets[0..2] != SERVICE_NET {
                    return Err(invalid_field(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
                        ),
                        &name,
                    ));
                }
                if used.contains(ip) && !dry_run {
                    return Err(invalid_field(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                        &name,
                    ));
                }
                ip.to_string()
            }
        };
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
    }
    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        let mut used = used_node_ports(state);
        if let Some(ports) = spec["ports"].as_array_mut() {
            for port in ports {
                if port["nodePort"].as_i64().is_some_and(|p| p != 0) {
                    continue;
                }
                let free = NODE_PORT_RANGE
                    .clone()
                    .find(|p| !used.contains(p))
                    .ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                used.insert(free);
                port["nodePort"] = json!(free);
            }
        }
    }
    Ok(())
}

fn invalid_ip(name: &str, ip: &str) -> ApiError {
    invalid_field(
        "spec.clusterIP",
        format!(
            "Invalid value: \"{ip}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        ),
        name,
    )
}

fn invalid_field(field: &str, message: String, name: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// Pods bound to a node are deleted gracefully (the node agent finishes the deletion);
/// everything else goes at once. Returns the grace period when deletion is graceful.
pub fn graceful_period(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if !(info.group.is_empty() && info.kind == "Pod") {
        return None;
    }
    let bound = obj["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return None;
    }
    let grace = requested
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    (grace > 0).then_some(grace)
}

/// Keeps the registry in step with CRDs written through this server.
pub async fn after_write(state: &Arc<State>, info: &ResourceInfo, obj: Option<&Value>) {
    if info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition" {
        match obj {
            Some(crd) => register_crd(state, crd),
            None => load_crds(state),
        }
    }
}

pub async fn after_delete(state: &Arc<State>, info: &ResourceInfo, obj: &Value) {
    if info.group == "apiextensions.k8s.io" && info.kind == "CustomResourceDefinition" {
        // Upstream's customresourcecleanup finalizer: the custom resources go with their CRD.
        let crd_name = name_of(obj).to_string();
        let prefixes: Vec<String> = state
            .registry
            .snapshot()
            .iter()
            .filter(|r| r.custom.as_ref().is_some_and(|c| c.crd_name == crd_name))
            .map(|r| r.key_prefix())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for prefix in prefixes {
            let (items, _, _) = state.cache.list(&prefix, None, |_| true, 0);
            for (key, _) in items {
                if let Err(err) = state.store.delete(&key, None).await {
                    tracing::warn!("deleting {key} with its CRD: {err}");
                }
            }
        }
        state.registry.set_custom(&crd_name, Vec::new());
    }
}

fn register_crd(state: &State, crd: &Value) {
    let name = name_of(crd).to_string();
    if crd["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    state.registry.set_custom(&name, crd_resources(crd));
}

/// Registers every stored CRD (at start, and when a CRD goes away).
pub fn load_crds(state: &State) {
    let (crds, _, _) = state.cache.list(
        "/registry/apiextensions.k8s.io/customresourcedefinitions/",
        None,
        |_| true,
        0,
    );
    let present: BTreeSet<String> = crds
        .iter()
        .map(|(_, c)| name_of(&c.value()).to_string())
        .collect();
    for gone in state.registry.custom_crd_names().difference(&present) {
        state.registry.set_custom(gone, Vec::new());
    }
    for (_, crd) in crds {
        register_crd(state, &crd.value());
    }
}

/// `POST pods/{name}/binding` (and the legacy `bindings` resource): sets spec.nodeName once.
pub async fn bind_pod(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let binding = body::decode_object(req.content_type, req.body)?;
    let pod_name = req.path.name.clone().unwrap_or_default();
    let node = binding["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &pod_name,
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "target.name".into(),
            }],
        ));
    }
    let key = req
        .info
        .object_key(req.path.namespace.as_deref(), &pod_name);
    let resource = timonel_api::status::Resource {
        group: "",
        plural: "pods",
    };
    loop {
        let current = state
            .cache
            .get(&key)
            .ok_or_else(|| ApiError::not_found(resource, &pod_name))?;
        let mut pod = current.value();
        if let Some(existing) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                resource,
                &pod_name,
                &format!("pod {pod_name} is already assigned to node \"{existing}\""),
            ));
        }
        if pod["metadata"]["deletionTimestamp"].is_string() {
            return Err(ApiError::conflict(
                resource,
                &pod_name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions: Vec<Value> = conditions
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": body::now_rfc3339()}));
        pod["status"]["conditions"] = Value::Array(conditions);
        if let Some(annotations) = binding["metadata"]["annotations"].as_object() {
            let meta = meta_mut(&mut pod);
            let target = meta.entry("annotations").or_insert_with(|| json!({}));
            for (k, v) in annotations {
                target[k] = v.clone();
            }
        }
        let mut bytes_obj = pod.clone();
        meta_mut(&mut bytes_obj).remove("resourceVersion");
        let bytes = serde_json::to_vec(&bytes_obj).expect("JSON serializes");
        match state.store.update(&key, bytes, current.mod_revision).await {
            Ok(revision) => {
                state.cache.wait_for(revision).await;
                return Ok(Reply::json(StatusCode::CREATED, success()));
            }
            Err(timonel_store::StoreError::Conflict { current, .. }) => {
                state.cache.wait_for(current).await
            }
            Err(err) => return Err(ApiError::internal(err.to_string())),
        }
    }
}

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// `POST pods/{name}/eviction`: deletes the pod if its PodDisruptionBudget allows it
/// (see [`crate::eviction`]).
pub async fn evict_pod(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    crate::eviction::evict(state, req).await
}

/// Kinds that are answered, never stored: access reviews.
pub fn create_virtual(
    _state: &State,
    req: &Request<'_>,
    obj: &Value,
) -> Result<Option<Reply>, ApiError> {
    let info = &req.info;
    let mut out = obj.clone();
    out["apiVersion"] = json!(info.api_version());
    out["kind"] = json!(info.kind);
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    match (info.group.as_str(), info.kind.as_str()) {
        (
            "authorization.k8s.io",
            "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview",
        ) => {
            // Every authenticated user may do anything until RBAC arrives.
            out["status"] =
                json!({"allowed": true, "reason": "timonel: authorization is not enforced yet"});
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            out["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
        ("authentication.k8s.io", "SelfSubjectReview") => {
            out["status"] =
                json!({"userInfo": {"username": req.user.name, "groups": req.user.groups}});
        }
        _ => return Ok(None),
    }
    Ok(Some(Reply::json(StatusCode::CREATED, out)))
}

/// Objects every cluster starts with: the four namespaces and the `kubernetes` Service.
pub async fn bootstrap(state: &Arc<State>) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = namespace_key(ns);
        if state.cache.get(&key).is_some() {
            continue;
        }
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": body::now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        store_if_absent(state, &key, &obj).await?;
    }
    let svc_key = "/registry/core/services/default/kubernetes";
    if state.cache.get(svc_key).is_none() {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": body::now_rfc3339(),
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": KUBERNETES_SERVICE_IP,
                "clusterIPs": [KUBERNETES_SERVICE_IP],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "internalTrafficPolicy": "Cluster",
            },
            "status": {"loadBalancer": {}},
        });
        store_if_absent(state, svc_key, &obj).await?;
    }
    Ok(())
}

async fn store_if_absent(state: &State, key: &str, obj: &Value) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(obj).expect("JSON serializes");
    match state.store.create(key, bytes).await {
        Ok(revision) => {
            state.cache.wait_for(revision).await;
            Ok(())
        }
        // Another server sharing the store created it first.
        Err(timonel_store::StoreError::AlreadyExists(_)) => Ok(()),
        Err(err) => Err(ApiError::internal(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        let limits = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(
            qos_class(
                &json!({"containers": [{"resources": {"limits": limits, "requests": limits}}]})
            ),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn default_tolerations_are_added_unless_already_tolerated() {
        let options = AdmissionOptions {
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 7,
        };
        let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
        add_default_tolerations(&options, &mut pod);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 7},
            ])
        );
        // Running admission again changes nothing.
        let before = pod.clone();
        add_default_tolerations(&options, &mut pod);
        assert_eq!(pod, before);

        // An own toleration of one taint is kept and only the other is added.
        let mut pod = json!({"spec": {"tolerations": [
            {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}
        ]}});
        add_default_tolerations(&options, &mut pod);
        let keys: Vec<(&str, i64)> = pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap(),
                    t["tolerationSeconds"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(keys, [(TAINT_UNREACHABLE, 60), (TAINT_NOT_READY, 300)]);

        // Tolerating everything (empty key, Exists) covers both.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&options, &mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);

        // A NoSchedule toleration does not cover the NoExecute taint.
        let mut pod = json!({"spec": {"tolerations": [
            {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoSchedule"}
        ]}});
        add_default_tolerations(&options, &mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
