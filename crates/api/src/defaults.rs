//! Server-side defaulting like upstream's `SetDefaults_*` functions (`pkg/apis/*/v1/defaults.go`)
//! plus the few defaults upstream applies in registry strategies (Namespace finalizers, Service
//! IP families, Job selectors). Works on the JSON form and never fails: wrongly typed fields are
//! left alone for validation to report.

use serde_json::{Map, Value, json};

type Obj = Map<String, Value>;

/// Applies upstream's defaults for `group`/`version`/`kind` to `obj` in place.
pub fn apply_defaults(group: &str, version: &str, kind: &str, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (group, kind) {
        ("", "Pod") => default_pod(root),
        ("", "PodTemplate") => {
            if let Some(template) = ensure_obj(root, "template") {
                default_pod_template(template);
            }
        }
        ("", "ReplicationController") => default_replication_controller(root),
        ("apps", "Deployment") => default_deployment(root),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                set_if_missing(spec, "replicas", json!(1));
                default_template_in(spec);
            }
        }
        ("apps", "DaemonSet") => default_daemon_set(root),
        ("apps", "StatefulSet") => default_stateful_set(root),
        ("batch", "Job") => default_job(root),
        ("batch", "CronJob") => default_cron_job(root),
        ("", "Service") => default_service(root),
        ("", "Namespace") => default_namespace(root),
        ("", "Secret") => set_if_empty(root, "type", "Opaque"),
        ("", "Node") => default_node(root),
        ("", "PersistentVolumeClaim") => default_pvc(root),
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure_obj(root, "spec") {
                set_if_empty(spec, "persistentVolumeReclaimPolicy", "Retain");
                set_if_empty(spec, "volumeMode", "Filesystem");
            }
            if let Some(status) = ensure_obj(root, "status") {
                set_if_empty(status, "phase", "Pending");
            }
        }
        ("", "Endpoints") => {
            for subset in array_items(root, "subsets") {
                default_ports_protocol(subset, "ports");
            }
        }
        ("", "LimitRange") => default_limit_range(root),
        ("autoscaling", "HorizontalPodAutoscaler") => default_hpa(version, root),
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(root),
        ("discovery.k8s.io", "EndpointSlice") => default_ports_protocol(root, "ports"),
        ("storage.k8s.io", "StorageClass") => {
            set_if_empty(root, "reclaimPolicy", "Delete");
            set_if_empty(root, "volumeBindingMode", "Immediate");
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            set_if_empty(root, "preemptionPolicy", "PreemptLowerPriority");
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            for subject in array_items(root, "subjects") {
                if matches!(
                    subject.get("kind").and_then(Value::as_str),
                    Some("User" | "Group")
                ) {
                    set_if_empty(subject, "apiGroup", "rbac.authorization.k8s.io");
                }
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => default_crd(root),
        _ => {}
    }
}

/// The selector and labels upstream's Job strategy generates on create unless
/// `spec.manualSelector` is true; `uid` is the new Job's `metadata.uid`. Labels the user already
/// set are kept (a conflicting value then fails validation, as upstream). Call it before
/// `apply_defaults`: upstream defaults the Job's own labels from the template labels after the
/// generated ones are in, so a Job without labels carries them too.
pub fn job_selector_defaults(obj: &mut Value, uid: &str) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(match_labels) =
        ensure_obj(spec, "selector").and_then(|s| ensure_obj(s, "matchLabels"))
    {
        set_if_missing(
            match_labels,
            "batch.kubernetes.io/controller-uid",
            json!(uid),
        );
    }
    let Some(labels) = ensure_obj(spec, "template")
        .and_then(|t| ensure_obj(t, "metadata"))
        .and_then(|m| ensure_obj(m, "labels"))
    else {
        return;
    };
    for (key, value) in [
        ("job-name", name.as_str()),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("controller-uid", uid),
        ("batch.kubernetes.io/controller-uid", uid),
    ] {
        set_if_missing(labels, key, json!(value));
    }
    let template_labels = labels.clone();
    copy_labels_if_empty(root, template_labels);
}

// ---- helpers -------------------------------------------------------------------------------

fn is_unset(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

fn set_if_missing(map: &mut Obj, key: &str, value: Value) {
    if is_unset(map.get(key)) {
        map.insert(key.to_string(), value);
    }
}

/// Go zero-value semantics for string enums: absent, null and "" are all unset.
fn set_if_empty(map: &mut Obj, key: &str, value: &str) {
    if is_unset(map.get(key)) || map.get(key).and_then(Value::as_str) == Some("") {
        map.insert(key.to_string(), json!(value));
    }
}

/// The object at `key`, created when absent or null; `None` when it has another type, which
/// is left for validation to report.
fn ensure_obj<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    if is_unset(map.get(key)) {
        map.insert(key.to_string(), Value::Object(Map::new()));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn existing_obj<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

fn array_items<'a>(map: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flat_map(|items| items.iter_mut().filter_map(Value::as_object_mut))
}

fn default_ports_protocol(map: &mut Obj, key: &str) {
    for port in array_items(map, key) {
        set_if_empty(port, "protocol", "TCP");
    }
}

fn template_labels(spec: &Obj) -> Option<Obj> {
    spec.get("template")?
        .get("metadata")?
        .get("labels")?
        .as_object()
        .filter(|labels| !labels.is_empty())
        .cloned()
}

fn copy_labels_if_empty(root: &mut Obj, labels: Obj) {
    if let Some(meta) = ensure_obj(root, "metadata") {
        let empty = meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
            && !meta
                .get("labels")
                .is_some_and(|l| !l.is_object() && !l.is_null());
        if empty {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
}

// ---- pods ----------------------------------------------------------------------------------

fn default_pod(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    default_pod_spec(spec);
    // These are applied to Pods only, not to templates (SetDefaults_Pod and priority admission).
    set_if_missing(spec, "enableServiceLinks", json!(true));
    set_if_missing(spec, "priority", json!(0));
    set_if_empty(spec, "preemptionPolicy", "PreemptLowerPriority");
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        for container in array_items(spec, list) {
            default_requests_from_limits(container);
            if host_network {
                for port in array_items(container, "ports") {
                    if is_unset(port.get("hostPort"))
                        && let Some(container_port) = port.get("containerPort").cloned()
                    {
                        port.insert("hostPort".into(), container_port);
                    }
                }
            }
        }
    }
}

fn default_requests_from_limits(container: &mut Obj) {
    let Some(resources) = existing_obj(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let Some(requests) = ensure_obj(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

fn default_template_in(spec: &mut Obj) {
    if let Some(template) = existing_obj(spec, "template") {
        default_pod_template(template);
    }
}

fn default_pod_template(template: &mut Obj) {
    if let Some(spec) = ensure_obj(template, "spec") {
        default_pod_spec(spec);
    }
}

fn default_pod_spec(spec: &mut Obj) {
    set_if_empty(spec, "dnsPolicy", "ClusterFirst");
    set_if_empty(spec, "restartPolicy", "Always");
    set_if_missing(spec, "securityContext", json!({}));
    set_if_missing(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_empty(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in array_items(spec, list) {
            default_container(container);
        }
    }
    for volume in array_items(spec, "volumes") {
        default_volume(volume);
    }
}

/// Upstream's image reference parsing reduced to what `imagePullPolicy` needs: the tag, with
/// "latest" implied when neither tag nor digest is given.
pub fn image_tag(image: &str) -> Option<&str> {
    let without_digest = match image.split_once('@') {
        Some((name, _)) => {
            let last = name.rsplit('/').next().unwrap_or(name);
            return last.split_once(':').map(|(_, tag)| tag);
        }
        None => image,
    };
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    Some(last.split_once(':').map(|(_, tag)| tag).unwrap_or("latest"))
}

fn default_container(container: &mut Obj) {
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let policy = if image_tag(&image) == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_if_empty(container, "imagePullPolicy", policy);
    set_if_empty(container, "terminationMessagePath", "/dev/termination-log");
    set_if_empty(container, "terminationMessagePolicy", "File");
    default_ports_protocol(container, "ports");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = existing_obj(container, probe) {
            default_probe(probe);
        }
    }
    for lifecycle_hook in ["postStart", "preStop"] {
        if let Some(handler) = existing_obj(container, "lifecycle")
            .and_then(|l| existing_obj(l, lifecycle_hook))
            .and_then(|h| existing_obj(h, "httpGet"))
        {
            default_http_get(handler);
        }
    }
    for env in array_items(container, "env") {
        if let Some(field_ref) =
            existing_obj(env, "valueFrom").and_then(|v| existing_obj(v, "fieldRef"))
        {
            set_if_empty(field_ref, "apiVersion", "v1");
        }
    }
}

fn default_probe(probe: &mut Obj) {
    set_if_missing(probe, "timeoutSeconds", json!(1));
    set_if_missing(probe, "periodSeconds", json!(10));
    set_if_missing(probe, "successThreshold", json!(1));
    set_if_missing(probe, "failureThreshold", json!(3));
    if let Some(http_get) = existing_obj(probe, "httpGet") {
        default_http_get(http_get);
    }
    if let Some(grpc) = existing_obj(probe, "grpc") {
        set_if_missing(grpc, "service", json!(""));
    }
}

fn default_http_get(http_get: &mut Obj) {
    set_if_empty(http_get, "path", "/");
    set_if_empty(http_get, "scheme", "HTTP");
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(volume: &mut Obj) {
    if !VOLUME_SOURCES.iter().any(|s| !is_unset(volume.get(*s))) {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = existing_obj(volume, source) {
            set_if_missing(source, "defaultMode", json!(420));
        }
    }
    if let Some(host_path) = existing_obj(volume, "hostPath") {
        set_if_missing(host_path, "type", json!(""));
    }
    if let Some(iscsi) = existing_obj(volume, "iscsi") {
        set_if_empty(iscsi, "iscsiInterface", "default");
    }
}

// ---- workloads -----------------------------------------------------------------------------

fn default_replication_controller(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_missing(spec, "replicas", json!(1));
    let labels = template_labels(spec);
    if let Some(labels) = &labels {
        let selector_empty = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if selector_empty
            && !spec
                .get("selector")
                .is_some_and(|s| !s.is_object() && !s.is_null())
        {
            spec.insert("selector".into(), Value::Object(labels.clone()));
        }
    }
    default_template_in(spec);
    if let Some(labels) = labels {
        copy_labels_if_empty(root, labels);
    }
}

fn default_deployment(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_missing(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_obj(spec, "strategy") {
        set_if_empty(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_obj(strategy, "rollingUpdate")
        {
            set_if_missing(rolling, "maxUnavailable", json!("25%"));
            set_if_missing(rolling, "maxSurge", json!("25%"));
        }
    }
    set_if_missing(spec, "revisionHistoryLimit", json!(10));
    set_if_missing(spec, "progressDeadlineSeconds", json!(600));
    default_template_in(spec);
}

fn default_daemon_set(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
        set_if_empty(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_obj(strategy, "rollingUpdate")
        {
            set_if_missing(rolling, "maxUnavailable", json!(1));
            set_if_missing(rolling, "maxSurge", json!(0));
        }
    }
    set_if_missing(spec, "revisionHistoryLimit", json!(10));
    default_template_in(spec);
}

fn default_stateful_set(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_empty(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = ensure_obj(spec, "updateStrategy") {
        set_if_empty(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(rolling) = ensure_obj(strategy, "rollingUpdate")
        {
            set_if_missing(rolling, "partition", json!(0));
        }
    }
    if let Some(policy) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
        set_if_empty(policy, "whenDeleted", "Retain");
        set_if_empty(policy, "whenScaled", "Retain");
    }
    set_if_missing(spec, "replicas", json!(1));
    set_if_missing(spec, "revisionHistoryLimit", json!(10));
    for claim in array_items(spec, "volumeClaimTemplates") {
        default_pvc(claim);
    }
    default_template_in(spec);
}

fn default_job(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    // Both unset means a non-parallel Job: one completion, one pod at a time.
    if is_unset(spec.get("completions")) && is_unset(spec.get("parallelism")) {
        spec.insert("completions".into(), json!(1));
    }
    set_if_missing(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec.get("backoffLimitPerIndex")) {
        6
    } else {
        i32::MAX as i64
    };
    set_if_missing(spec, "backoffLimit", json!(backoff));
    set_if_empty(spec, "completionMode", "NonIndexed");
    set_if_missing(spec, "suspend", json!(false));
    let replacement = if is_unset(spec.get("podFailurePolicy")) {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set_if_empty(spec, "podReplacementPolicy", replacement);
    if let Some(policy) = existing_obj(spec, "podFailurePolicy") {
        for rule in array_items(policy, "rules") {
            for condition in array_items(rule, "onPodConditions") {
                set_if_empty(condition, "status", "True");
            }
        }
    }
    let labels = template_labels(spec);
    default_template_in(spec);
    if let Some(labels) = labels {
        copy_labels_if_empty(root, labels);
    }
}

fn default_cron_job(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_empty(spec, "concurrencyPolicy", "Allow");
    set_if_missing(spec, "suspend", json!(false));
    set_if_missing(spec, "successfulJobsHistoryLimit", json!(3));
    set_if_missing(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = existing_obj(spec, "jobTemplate").and_then(|t| existing_obj(t, "spec"))
    {
        default_template_in(job_spec);
    }
}

// ---- core ----------------------------------------------------------------------------------

fn default_service(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_empty(spec, "type", "ClusterIP");
    set_if_empty(spec, "sessionAffinity", "None");
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP") {
        set_if_missing(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    for port in array_items(spec, "ports") {
        set_if_empty(port, "protocol", "TCP");
        let target_unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if target_unset && let Some(number) = port.get("port").cloned() {
            port.insert("targetPort".into(), number);
        }
    }
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        set_if_empty(spec, "externalTrafficPolicy", "Cluster");
    }
    if service_type == "LoadBalancer" {
        set_if_missing(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if service_type != "ExternalName" {
        set_if_empty(spec, "internalTrafficPolicy", "Cluster");
        // The IP family fields are set by the registry when it allocates; single-stack IPv4 here.
        set_if_empty(spec, "ipFamilyPolicy", "SingleStack");
        set_if_missing(spec, "ipFamilies", json!(["IPv4"]));
    }
}

fn default_namespace(root: &mut Obj) {
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(name) = name
        && let Some(labels) = ensure_obj(root, "metadata").and_then(|m| ensure_obj(m, "labels"))
    {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    if let Some(spec) = ensure_obj(root, "spec") {
        set_if_missing(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = ensure_obj(root, "status") {
        set_if_empty(status, "phase", "Active");
    }
}

fn default_node(root: &mut Obj) {
    if let Some(status) = existing_obj(root, "status")
        && is_unset(status.get("allocatable"))
        && let Some(capacity) = status.get("capacity").cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
}

fn default_pvc(root: &mut Obj) {
    if let Some(spec) = ensure_obj(root, "spec") {
        set_if_empty(spec, "volumeMode", "Filesystem");
    }
    if let Some(status) = ensure_obj(root, "status") {
        set_if_empty(status, "phase", "Pending");
    }
}

fn default_limit_range(root: &mut Obj) {
    let Some(spec) = existing_obj(root, "spec") else {
        return;
    };
    for limit in array_items(spec, "limits") {
        if limit.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        // Default limits come from max, default requests from the default limits.
        let max = limit
            .get("max")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(default) = ensure_obj(limit, "default") {
            for (name, quantity) in &max {
                default.entry(name.clone()).or_insert(quantity.clone());
            }
        }
        let default = limit
            .get("default")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(default_request) = ensure_obj(limit, "defaultRequest") {
            for (name, quantity) in &default {
                default_request
                    .entry(name.clone())
                    .or_insert(quantity.clone());
            }
        }
        for key in ["default", "defaultRequest"] {
            if limit
                .get(key)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                limit.remove(key);
            }
        }
    }
}

// ---- other groups --------------------------------------------------------------------------

fn default_hpa(version: &str, root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    set_if_missing(spec, "minReplicas", json!(1));
    if version == "v1" {
        return;
    }
    let metrics_empty = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if metrics_empty
        && !spec
            .get("metrics")
            .is_some_and(|m| !m.is_array() && !m.is_null())
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    // Behavior is only filled in when the user gave one.
    if let Some(behavior) = existing_obj(spec, "behavior") {
        if let Some(up) = ensure_obj(behavior, "scaleUp") {
            set_if_missing(up, "stabilizationWindowSeconds", json!(0));
            set_if_empty(up, "selectPolicy", "Max");
            set_if_missing(
                up,
                "policies",
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                       {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
        if let Some(down) = ensure_obj(behavior, "scaleDown") {
            set_if_missing(down, "stabilizationWindowSeconds", json!(300));
            set_if_empty(down, "selectPolicy", "Max");
            set_if_missing(
                down,
                "policies",
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

fn default_network_policy(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    for direction in ["ingress", "egress"] {
        for rule in array_items(spec, direction) {
            default_ports_protocol(rule, "ports");
        }
    }
    let types_empty = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if types_empty
        && !spec
            .get("policyTypes")
            .is_some_and(|t| !t.is_array() && !t.is_null())
    {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let mut types = vec![json!("Ingress")];
        if has_egress {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

fn default_crd(root: &mut Obj) {
    let Some(spec) = ensure_obj(root, "spec") else {
        return;
    };
    if let Some(names) = existing_obj(spec, "names") {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !kind.is_empty() {
            set_if_empty(names, "singular", &kind.to_lowercase());
            set_if_empty(names, "listKind", &format!("{kind}List"));
        }
    }
    set_if_missing(spec, "conversion", json!({"strategy": "None"}));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, obj: Value) -> Value {
        let mut obj = obj;
        apply_defaults(group, "v1", kind, &mut obj);
        obj
    }

    #[test]
    fn bare_deployment_gets_every_default() {
        let d = defaulted(
            "apps",
            "Deployment",
            json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "readinessProbe": {"httpGet": {"port": 80}}}]}}}}),
        );
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        // Pod-only defaults stay off templates.
        assert!(pod.get("enableServiceLinks").is_none());
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
    }

    #[test]
    fn image_pull_policy_by_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1", "IfNotPresent"),
            ("nginx@sha256:abc", "IfNotPresent"),
        ] {
            let pod = defaulted(
                "",
                "Pod",
                json!({"spec": {"containers": [{"name": "c", "image": image}]}}),
            );
            assert_eq!(
                pod["spec"]["containers"][0]["imagePullPolicy"], policy,
                "{image}"
            );
        }
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never"}]}}),
        );
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn pod_only_defaults_and_volumes() {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": "x:1",
                "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}}],
                "volumes": [{"name": "a"}, {"name": "s", "secret": {"secretName": "s"}},
                            {"name": "m", "configMap": {"name": "m", "defaultMode": 256}}],
                "tolerations": [{"key": "k", "operator": "Exists"}]}}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"memory": "1Gi", "cpu": "1"})
        );
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["configMap"]["defaultMode"], 256);
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "k", "operator": "Exists"}])
        );
    }

    #[test]
    fn workload_defaults() {
        let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"spec": {}}]}}),
        );
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        let job = defaulted(
            "batch",
            "Job",
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {"restartPolicy": "Never"}}}}),
        );
        assert_eq!(job["spec"]["completions"], 1);
        assert_eq!(job["spec"]["parallelism"], 1);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["spec"]["completionMode"], "NonIndexed");
        assert_eq!(job["spec"]["suspend"], false);
        assert_eq!(job["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(job["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
        let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
        assert!(parallel["spec"].get("completions").is_none());
        let cj = defaulted(
            "batch",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
        );
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
    }

    #[test]
    fn job_selector_generation() {
        let mut job = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {}}}});
        job_selector_defaults(&mut job, "u-1");
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "pi"
        );
        assert_eq!(job["metadata"]["labels"]["controller-uid"], "u-1");
        let mut manual =
            json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"x": "y"}}}});
        job_selector_defaults(&mut manual, "u");
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"x": "y"}})
        );
    }

    #[test]
    fn service_namespace_and_misc() {
        let svc = defaulted(
            "",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}),
        );
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], "https");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        let ext = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "a.b"}}),
        );
        assert!(ext["spec"].get("ipFamilies").is_none());
        let ns = defaulted("", "Namespace", json!({"metadata": {"name": "dev"}}));
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "dev"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(defaulted("", "Secret", json!({}))["type"], "Opaque");
        let sc = defaulted(
            "storage.k8s.io",
            "StorageClass",
            json!({"provisioner": "x"}),
        );
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        let rb = defaulted(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"subjects": [{"kind": "User", "name": "a"}, {"kind": "ServiceAccount", "name": "b"}]}),
        );
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
        let np = defaulted(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"egress": [{}]}}),
        );
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        let mut hpa = json!({"spec": {"behavior": {}}});
        apply_defaults("autoscaling", "v2", "HorizontalPodAutoscaler", &mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            300
        );
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }

    #[test]
    fn wrong_types_are_left_alone() {
        let mut obj = json!({"spec": "nope"});
        apply_defaults("apps", "Deployment", "Deployment", &mut obj);
        assert_eq!(obj, json!({"spec": "nope"}));
    }
}
