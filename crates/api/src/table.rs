//! Server-side `meta.k8s.io/v1` Tables with upstream's printer columns and cell logic
//! (`pkg/printers/internalversion/printers.go`, always in wide mode as the apiserver renders).

use crate::selectors::LabelSelector;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// `includeObject` of the Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` parameter; unknown values fall back to the default.
    pub fn from_param(value: &str) -> IncludeObject {
        match value {
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESCRIPTION: &str = "Names of each container in the template.";
const IMAGES_DESCRIPTION: &str = "Images referenced by each container in the template.";

/// One column: name, type, priority and description (format is "name" for the Name column).
struct Column {
    name: &'static str,
    kind: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: i64,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        priority,
        description,
    }
}

const NAME: Column = col("Name", "string", 0, NAME_DESCRIPTION);
const AGE: Column = col("Age", "string", 0, AGE_DESCRIPTION);
const CONTAINERS: Column = col("Containers", "string", 1, CONTAINERS_DESCRIPTION);
const IMAGES: Column = col("Images", "string", 1, IMAGES_DESCRIPTION);

fn columns_for(group: &str, kind: &str) -> Vec<Column> {
    match (group, kind) {
        ("", "Pod") => vec![
            NAME,
            col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            col(
                "IP",
                "string",
                1,
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            col(
                "Node",
                "string",
                1,
                "NodeName indicates in which node this pod is scheduled.",
            ),
            col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        ("", "PodTemplate") => vec![
            NAME,
            col("Containers", "string", 0, CONTAINERS_DESCRIPTION),
            col("Images", "string", 0, IMAGES_DESCRIPTION),
            col(
                "Pod Labels",
                "string",
                0,
                "The labels for the pod template.",
            ),
        ],
        ("apps", "Deployment") => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            col(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => vec![
            NAME,
            col(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            col(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            col(
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        ("apps", "DaemonSet") => vec![
            NAME,
            col(
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            col(
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            col(
                "Ready",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            col(
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            col(
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
            ),
            col(
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            col(
                "Selector",
                "string",
                1,
                "A label query over pods that are managed by the daemon set.",
            ),
        ],
        ("apps", "StatefulSet") => vec![
            NAME,
            col("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        ("batch", "Job") => vec![
            NAME,
            col("Status", "string", 0, "Status of the job."),
            col(
                "Completions",
                "string",
                0,
                "The number of pods which reached phase Succeeded.",
            ),
            col(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            col(
                "Selector",
                "string",
                1,
                "A label query over pods that should match the pod count.",
            ),
        ],
        ("batch", "CronJob") => vec![
            NAME,
            col(
                "Schedule",
                "string",
                0,
                "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            ),
            col(
                "Timezone",
                "string",
                0,
                "The time zone name for the given schedule.",
            ),
            col(
                "Suspend",
                "boolean",
                0,
                "This flag tells the controller to suspend subsequent executions.",
            ),
            col(
                "Active",
                "integer",
                0,
                "A list of pointers to currently running jobs.",
            ),
            col(
                "Last Schedule",
                "string",
                0,
                "Information when was the last time the job was successfully scheduled.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            col(
                "Selector",
                "string",
                1,
                "A label query over pods that should match the pod count.",
            ),
        ],
        ("", "Service") => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        ("", "Endpoints") => vec![
            NAME,
            col(
                "Endpoints",
                "string",
                0,
                "The set of all endpoints is the union of all subsets.",
            ),
            AGE,
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            NAME,
            col(
                "AddressType",
                "string",
                0,
                "addressType specifies the type of address carried by this EndpointSlice.",
            ),
            col(
                "Ports",
                "string",
                0,
                "ports specifies the list of network ports exposed by each endpoint in this slice.",
            ),
            col(
                "Endpoints",
                "string",
                0,
                "endpoints is a list of unique endpoints in this slice.",
            ),
            AGE,
        ],
        ("", "Node") => vec![
            NAME,
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            AGE,
            col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node.",
            ),
            col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        ("", "Event") => vec![
            col(
                "Last Seen",
                "string",
                0,
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future",
            ),
            col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            col(
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            col(
                "Subobject",
                "string",
                1,
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
            ),
            col(
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            col("Name", "string", 1, NAME_DESCRIPTION),
        ],
        ("", "Namespace") => vec![
            NAME,
            col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        ("", "Secret") => vec![
            NAME,
            col(
                "Type",
                "string",
                0,
                "Used to facilitate programmatic handling of secret data.",
            ),
            col("Data", "string", 0, "Data contains the secret data."),
            AGE,
        ],
        ("", "ConfigMap") => vec![
            NAME,
            col("Data", "string", 0, "Data contains the configuration data."),
            AGE,
        ],
        ("", "ServiceAccount") => vec![
            NAME,
            col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            ),
            AGE,
        ],
        ("", "PersistentVolume") => vec![
            NAME,
            col(
                "Capacity",
                "string",
                0,
                "capacity is the description of the persistent volume's resources and capacity.",
            ),
            col(
                "Access Modes",
                "string",
                0,
                "accessModes contains all ways the volume can be mounted.",
            ),
            col(
                "Reclaim Policy",
                "string",
                0,
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
            ),
            col(
                "Status",
                "string",
                0,
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
            ),
            col(
                "Claim",
                "string",
                0,
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
            ),
            col("StorageClass", "string", 0, "StorageClass of the pv"),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "VolumeAttributesClass of the pv",
            ),
            col(
                "Reason",
                "string",
                0,
                "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
            ),
            AGE,
            col(
                "VolumeMode",
                "string",
                1,
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
            ),
        ],
        ("", "PersistentVolumeClaim") => vec![
            NAME,
            col(
                "Status",
                "string",
                0,
                "phase represents the current phase of PersistentVolumeClaim.",
            ),
            col(
                "Volume",
                "string",
                0,
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            col(
                "Capacity",
                "string",
                0,
                "capacity represents the actual resources of the underlying volume.",
            ),
            col(
                "Access Modes",
                "string",
                0,
                "accessModes contains the actual access modes the volume backing the PVC has.",
            ),
            col("StorageClass", "string", 0, "StorageClass of the pvc"),
            col(
                "VolumeAttributesClass",
                "string",
                0,
                "VolumeAttributesClass of the pvc",
            ),
            AGE,
            col(
                "VolumeMode",
                "string",
                1,
                "volumeMode defines what type of volume is required by the claim.",
            ),
        ],
        ("networking.k8s.io", "Ingress") => vec![
            NAME,
            col(
                "Class",
                "string",
                0,
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            col(
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            col(
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            col(
                "Ports",
                "string",
                0,
                "Ports of TLS configurations that open",
            ),
            AGE,
        ],
        ("networking.k8s.io", "IngressClass") => vec![
            NAME,
            col(
                "Controller",
                "string",
                0,
                "Controller that is responsible for handling this class",
            ),
            col(
                "Parameters",
                "string",
                0,
                "A reference to a resource with additional parameters",
            ),
            AGE,
        ],
        ("networking.k8s.io", "NetworkPolicy") => vec![
            NAME,
            col(
                "Pod-Selector",
                "string",
                0,
                "podSelector selects the pods to which this NetworkPolicy object applies.",
            ),
            AGE,
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            NAME,
            col(
                "Reference",
                "string",
                0,
                "scaleTargetRef points to the target resource to scale",
            ),
            col(
                "Targets",
                "string",
                0,
                "metrics contains the specifications for which to use to calculate the desired replica count",
            ),
            col(
                "MinPods",
                "string",
                0,
                "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
            ),
            col(
                "MaxPods",
                "string",
                0,
                "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
            ),
            col(
                "Replicas",
                "string",
                0,
                "currentReplicas is current number of replicas of pods managed by this autoscaler",
            ),
            AGE,
        ],
        ("policy", "PodDisruptionBudget") => vec![
            NAME,
            col(
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available.",
            ),
            col(
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable.",
            ),
            col(
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
            NAME,
            col(
                "Role",
                "string",
                0,
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.",
            ),
            AGE,
            col("Users", "string", 1, "Users in the roleBinding"),
            col("Groups", "string", 1, "Groups in the roleBinding"),
            col(
                "ServiceAccounts",
                "string",
                1,
                "ServiceAccounts in the roleBinding",
            ),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            NAME,
            col(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            AGE,
        ],
        ("storage.k8s.io", "StorageClass") => vec![
            NAME,
            col(
                "Provisioner",
                "string",
                0,
                "provisioner indicates the type of the provisioner.",
            ),
            col(
                "ReclaimPolicy",
                "string",
                0,
                "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
            ),
            col(
                "VolumeBindingMode",
                "string",
                0,
                "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
            ),
            col(
                "AllowVolumeExpansion",
                "string",
                0,
                "allowVolumeExpansion shows whether the storage class allow volume expand.",
            ),
            AGE,
        ],
        ("scheduling.k8s.io", "PriorityClass") => vec![
            NAME,
            col(
                "Value",
                "integer",
                0,
                "value represents the integer value of this priority class.",
            ),
            col(
                "Global-Default",
                "boolean",
                0,
                "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
            ),
            AGE,
            col(
                "PreemptionPolicy",
                "string",
                0,
                "preemptionPolicy is the Policy for preempting pods with lower priority.",
            ),
        ],
        ("", "ResourceQuota") => vec![
            NAME,
            col(
                "Request",
                "string",
                0,
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            col(
                "Limit",
                "string",
                0,
                "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
            ),
            AGE,
        ],
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => vec![
            NAME,
            col(
                "Webhooks",
                "integer",
                0,
                "Webhooks indicates the number of webhooks registered in this configuration",
            ),
            AGE,
        ],
        ("apps", "ControllerRevision") => vec![
            NAME,
            col("Controller", "string", 0, "Controller of the object"),
            col(
                "Revision",
                "string",
                0,
                "Revision indicates the revision of the state represented by Data.",
            ),
            AGE,
        ],
        _ => Vec::new(),
    }
}

// ---- small accessors -----------------------------------------------------------------------

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or_none(value: String) -> String {
    if value.is_empty() {
        "<none>".to_string()
    } else {
        value
    }
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Upstream's `translateTimestampSince`: `<unknown>` for a missing time.
fn since(obj: &Value, pointer: &str, now: DateTime<Utc>) -> String {
    match parse_time(text(obj, pointer)) {
        Some(t) => human_duration(now.signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(obj, "/metadata/creationTimestamp", now)
}

/// Upstream's `duration.HumanDuration`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "<none>".to_string();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    or_none(pairs.join(","))
}

/// `metav1.FormatLabelSelector`.
fn format_label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_label_selector_json(selector.unwrap_or(&Value::Null)) {
        Ok(parsed) => or_none(parsed.to_string()),
        Err(_) => "<error>".to_string(),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn list_with_more(list: Vec<String>, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if count > max {
        return format!("{joined} + {} more...", count - max);
    }
    if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

// ---- per-kind rows -------------------------------------------------------------------------

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> (Vec<Value>, Option<Value>) {
    let phase = text(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !text(pod, "/status/reason").is_empty() {
        reason = text(pod, "/status/reason").to_string();
    }
    let conditions = items(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }
    let init_specs = items(pod, "/spec/initContainers");
    let restartable = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = items(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut restartable_restarts = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;
    let later = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut initializing = false;
    let init_statuses = items(pod, "/status/initContainerStatuses");
    for (i, status) in init_statuses.iter().enumerate() {
        let count = int(status, "/restartCount");
        restarts += count;
        let finished = parse_time(text(status, "/lastState/terminated/finishedAt"));
        last_restart = later(last_restart, finished);
        let name = text(status, "/name");
        if restartable(name) {
            restartable_restarts += count;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = status
            .pointer("/state/terminated")
            .filter(|t| t.is_object());
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some() && int(status, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if restartable(name) && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(terminated) = terminated {
            let terminated_reason = text(terminated, "/reason");
            reason = if !terminated_reason.is_empty() {
                format!("Init:{terminated_reason}")
            } else if int(terminated, "/signal") != 0 {
                format!("Init:Signal:{}", int(terminated, "/signal"))
            } else {
                format!("Init:ExitCode:{}", int(terminated, "/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| text(c, "/type") == "Initialized" && text(c, "/status") == "True");
    if !initializing || initialized {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for status in items(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(
                last_restart,
                parse_time(text(status, "/lastState/terminated/finishedAt")),
            );
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = status
                .pointer("/state/terminated")
                .filter(|t| t.is_object());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(terminated) = terminated {
                let terminated_reason = text(terminated, "/reason");
                reason = if !terminated_reason.is_empty() {
                    terminated_reason.to_string()
                } else if int(terminated, "/signal") != 0 {
                    format!("Signal:{}", int(terminated, "/signal"))
                } else {
                    format!("ExitCode:{}", int(terminated, "/exitCode"))
                };
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status
                    .pointer("/state/running")
                    .is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| text(c, "/type") == "Ready" && text(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if deleting && text(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }
    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            human_duration(now.signed_duration_since(t))
        ),
        _ => restarts.to_string(),
    };
    let pod_ip = items(pod, "/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| text(pod, "/status/podIP"));
    let gates = items(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, "/conditionType");
                conditions
                    .iter()
                    .find(|c| text(c, "/type") == wanted)
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    let row_conditions = match phase {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let cells = vec![
        json!(text(pod, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(pod, now)),
        json!(or_none(pod_ip.to_string())),
        json!(or_none(text(pod, "/spec/nodeName").to_string())),
        json!(or_none(text(pod, "/status/nominatedNodeName").to_string())),
        json!(readiness_gates),
    ];
    (cells, row_conditions)
}

fn service_external_ip(svc: &Value) -> String {
    let external_ips: Vec<&str> = items(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match text(svc, "/spec/type") {
        "ClusterIP" | "NodePort" | "" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb: BTreeSet<&str> = items(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if text(i, "/ip").is_empty() {
                        text(i, "/hostname")
                    } else {
                        text(i, "/ip")
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            let mut results: Vec<&str> = lb.into_iter().collect();
            results.extend(external_ips);
            if results.is_empty() {
                "<pending>".to_string()
            } else {
                results.join(",")
            }
        }
        "ExternalName" => text(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = items(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int(p, "/port");
            let protocol = text(p, "/protocol");
            let node_port = int(p, "/nodePort");
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    or_none(pieces.join(","))
}

fn endpoints_cell(ep: &Value) -> String {
    let subsets = items(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let max: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = items(subset, "/addresses");
        let ports = items(subset, "/ports");
        if ports.is_empty() {
            count += addresses.len();
            list.extend(
                addresses
                    .iter()
                    .take(max.saturating_sub(list.len()))
                    .map(|a| text(a, "/ip").to_string()),
            );
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == max {
                    break;
                }
                let ip = text(address, "/ip");
                let host = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                list.push(format!("{host}:{}", int(port, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else {
        joined
    }
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = items(node, "/status/conditions")
        .iter()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(
            if text(ready, "/status") == "True" {
                "Ready"
            } else {
                "NotReady"
            }
            .to_string(),
        );
    }
    if status.is_empty() {
        status.push("Unknown".to_string());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == "kubernetes.io/role" && value.as_str().is_some_and(|v| !v.is_empty()) {
                roles.insert(value.as_str().unwrap_or_default().to_string());
            }
        }
    }
    let address = |kind: &str| {
        items(node, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map(|a| text(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    vec![
        json!(text(node, "/metadata/name")),
        json!(status.join(",")),
        json!(or_none(roles.into_iter().collect::<Vec<_>>().join(","))),
        json!(age(node, now)),
        json!(text(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(unknown(text(node, "/status/nodeInfo/osImage"))),
        json!(unknown(text(node, "/status/nodeInfo/kernelVersion"))),
        json!(unknown(text(
            node,
            "/status/nodeInfo/containerRuntimeVersion"
        ))),
    ]
}

fn event_cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let micro_since = |pointer: &str| since(event, pointer, now);
    let mut first = since(event, "/firstTimestamp", now);
    if parse_time(text(event, "/firstTimestamp")).is_none() {
        first = micro_since("/eventTime");
    }
    let mut last = since(event, "/lastTimestamp", now);
    if parse_time(text(event, "/lastTimestamp")).is_none() {
        last = first.clone();
    }
    let mut count = int(event, "/count");
    if event.get("series").is_some_and(Value::is_object) {
        last = micro_since("/series/lastObservedTime");
        count = int(event, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let name = text(event, "/involvedObject/name");
    let target = if name.is_empty() {
        kind
    } else {
        format!("{kind}/{name}")
    };
    let (component, instance) = if !text(event, "/source/component").is_empty()
        || !text(event, "/source/host").is_empty()
    {
        (
            text(event, "/source/component"),
            text(event, "/source/host"),
        )
    } else {
        (
            text(event, "/reportingComponent"),
            text(event, "/reportingInstance"),
        )
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(target),
        json!(text(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(event, "/message").trim()),
        json!(first),
        json!(count),
        json!(text(event, "/metadata/name")),
    ]
}

fn job_cells(job: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(job, "/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = parse_time(text(job, "/status/startTime"));
    let end = parse_time(text(job, "/status/completionTime"));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now.signed_duration_since(s)),
        (Some(s), Some(e)) => human_duration(e.signed_duration_since(s)),
    };
    let has = |kind: &str| {
        items(job, "/status/conditions")
            .iter()
            .find(|c| text(c, "/type") == kind)
            .is_some_and(|c| text(c, "/status") == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(items(job, "/spec/template/spec/containers"));
    vec![
        json!(text(job, "/metadata/name")),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(job, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(job.pointer("/spec/selector"))),
    ]
}

fn access_modes(modes: &[Value]) -> String {
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if modes.iter().any(|m| m.as_str() == Some(mode)) {
            out.push(short);
        }
    }
    out.join(",")
}

fn storage_class_of(obj: &Value) -> String {
    let class = text(obj, "/spec/storageClassName");
    if !class.is_empty() {
        return class.to_string();
    }
    text(
        obj,
        "/metadata/annotations/volume.beta.kubernetes.io~1storage-class",
    )
    .to_string()
}

fn unset(value: &str) -> String {
    if value.is_empty() {
        "<unset>".to_string()
    } else {
        value.to_string()
    }
}

fn quantity_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

fn hpa_targets(hpa: &Value) -> String {
    let specs = items(hpa, "/spec/metrics");
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let statuses = items(hpa, "/status/currentMetrics");
    let max = 3;
    let mut list = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if list.len() == max {
            break;
        }
        let status = statuses.get(i);
        let source = match text(spec, "/type") {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            _ => "",
        };
        let target = spec.get(source).and_then(|s| s.get("target"));
        let current = status
            .and_then(|s| s.get(source))
            .and_then(|s| s.get("current"));
        let utilization_target = target
            .and_then(|t| t.get("averageUtilization"))
            .and_then(Value::as_i64);
        let average_target = target.and_then(|t| t.get("averageValue").or_else(|| t.get("value")));
        let entry = if let (Some(avg), false) = (average_target, utilization_target.is_some()) {
            let current = current
                .and_then(|c| c.get("averageValue").or_else(|| c.get("value")))
                .map(|v| quantity_text(Some(v)))
                .unwrap_or_else(|| "<unknown>".to_string());
            format!("{current}/{}", quantity_text(Some(avg)))
        } else {
            let current = current
                .and_then(|c| c.get("averageUtilization"))
                .and_then(Value::as_i64)
                .map(|u| format!("{u}%"))
                .unwrap_or_else(|| "<unknown>".to_string());
            let target = utilization_target
                .map(|u| format!("{u}%"))
                .unwrap_or_else(|| "<auto>".to_string());
            let name = spec.get(source).map(|s| text(s, "/name")).unwrap_or("");
            if matches!(source, "resource" | "containerResource") {
                format!("{name}: {current}/{target}")
            } else {
                format!("{current}/{target}")
            }
        };
        list.push(entry);
    }
    let joined = list.join(", ");
    if specs.len() > max {
        format!("{joined} + {} more...", specs.len() - max)
    } else {
        joined
    }
}

fn int_or_string_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    }
}

fn binding_subjects(binding: &Value) -> (String, String, String) {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for subject in items(binding, "/subjects") {
        let name = text(subject, "/name").to_string();
        match text(subject, "/kind") {
            "User" => users.push(name),
            "Group" => groups.push(name),
            "ServiceAccount" => {
                let ns = text(subject, "/namespace");
                service_accounts.push(if ns.is_empty() {
                    name
                } else {
                    format!("{ns}/{name}")
                });
            }
            _ => {}
        }
    }
    (
        users.join(", "),
        groups.join(", "),
        service_accounts.join(", "),
    )
}

fn resource_quota_cells(quota: &Value) -> (String, String) {
    let hard = quota
        .pointer("/status/hard")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for name in names {
        let used = quantity_text(
            quota
                .pointer("/status/used")
                .and_then(|u| u.get(name.as_str())),
        );
        let hard_value = quantity_text(
            quota
                .pointer("/status/hard")
                .and_then(|h| h.get(name.as_str())),
        );
        let entry = format!("{name}: {used}/{hard_value}");
        if name.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    (requests.join(", "), limits.join(", "))
}

/// Cells for a built-in kind, or `None` when the kind uses the default columns.
fn row_cells(
    group: &str,
    kind: &str,
    obj: &Value,
    now: DateTime<Utc>,
) -> Option<(Vec<Value>, Option<Value>)> {
    let name = json!(text(obj, "/metadata/name"));
    let created = json!(age(obj, now));
    let template_containers = |pointer: &str| container_cells(items(obj, pointer));
    let cells = match (group, kind) {
        ("", "Pod") => return Some(pod_cells(obj, now)),
        ("", "PodTemplate") => {
            let (names, images) = template_containers("/template/spec/containers");
            vec![
                name,
                json!(names),
                json!(images),
                json!(format_labels(obj.pointer("/template/metadata/labels"))),
            ]
        }
        ("apps", "Deployment") => {
            let (names, images) = template_containers("/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    int(obj, "/spec/replicas")
                )),
                json!(int(obj, "/status/updatedReplicas")),
                json!(int(obj, "/status/availableReplicas")),
                created,
                json!(names),
                json!(images),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "ReplicaSet") | ("", "ReplicationController") => {
            let (names, images) = template_containers("/spec/template/spec/containers");
            let selector = if kind == "ReplicaSet" {
                format_label_selector(obj.pointer("/spec/selector"))
            } else {
                format_labels(obj.pointer("/spec/selector"))
            };
            vec![
                name,
                json!(int(obj, "/spec/replicas")),
                json!(int(obj, "/status/replicas")),
                json!(int(obj, "/status/readyReplicas")),
                created,
                json!(names),
                json!(images),
                json!(selector),
            ]
        }
        ("apps", "DaemonSet") => {
            let (names, images) = template_containers("/spec/template/spec/containers");
            vec![
                name,
                json!(int(obj, "/status/desiredNumberScheduled")),
                json!(int(obj, "/status/currentNumberScheduled")),
                json!(int(obj, "/status/numberReady")),
                json!(int(obj, "/status/updatedNumberScheduled")),
                json!(int(obj, "/status/numberAvailable")),
                json!(format_labels(
                    obj.pointer("/spec/template/spec/nodeSelector")
                )),
                created,
                json!(names),
                json!(images),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "StatefulSet") => {
            let (names, images) = template_containers("/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    int(obj, "/spec/replicas")
                )),
                created,
                json!(names),
                json!(images),
            ]
        }
        ("batch", "Job") => job_cells(obj, now),
        ("batch", "CronJob") => {
            let (names, images) =
                template_containers("/spec/jobTemplate/spec/template/spec/containers");
            let last_schedule = if text(obj, "/status/lastScheduleTime").is_empty() {
                "<none>".to_string()
            } else {
                since(obj, "/status/lastScheduleTime", now)
            };
            let suspend = match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
                Some(true) => "True",
                Some(false) => "False",
                None => "<unset>",
            };
            vec![
                name,
                json!(text(obj, "/spec/schedule")),
                json!(or_none(text(obj, "/spec/timeZone").to_string())),
                json!(suspend),
                json!(items(obj, "/status/active").len()),
                json!(last_schedule),
                created,
                json!(names),
                json!(images),
                json!(format_label_selector(
                    obj.pointer("/spec/jobTemplate/spec/selector")
                )),
            ]
        }
        ("", "Service") => {
            let cluster_ip = items(obj, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or_else(|| text(obj, "/spec/clusterIP"));
            vec![
                name,
                json!(text(obj, "/spec/type")),
                json!(or_none(cluster_ip.to_string())),
                json!(service_external_ip(obj)),
                json!(service_ports(obj)),
                created,
                json!(format_labels(obj.pointer("/spec/selector"))),
            ]
        }
        ("", "Endpoints") => vec![name, json!(endpoints_cell(obj)), created],
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> = items(obj, "/ports")
                .iter()
                .map(|p| match p.get("port").and_then(Value::as_i64) {
                    Some(n) => n.to_string(),
                    None if !text(p, "/name").is_empty() => text(p, "/name").to_string(),
                    None => "*".to_string(),
                })
                .collect();
            let port_count = ports.len();
            let addresses: Vec<String> = items(obj, "/endpoints")
                .iter()
                .flat_map(|e| {
                    items(e, "/addresses")
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            let address_count = addresses.len();
            vec![
                name,
                json!(text(obj, "/addressType")),
                json!(list_with_more(
                    ports.into_iter().take(3).collect(),
                    port_count,
                    3
                )),
                json!(list_with_more(
                    addresses.into_iter().take(3).collect(),
                    address_count,
                    3
                )),
                created,
            ]
        }
        ("", "Node") => node_cells(obj, now),
        ("", "Event") => event_cells(obj, now),
        ("", "Namespace") => vec![name, json!(text(obj, "/status/phase")), created],
        ("", "Secret") => {
            let count = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, Map::len);
            vec![name, json!(text(obj, "/type")), json!(count), created]
        }
        ("", "ConfigMap") => {
            let count = ["data", "binaryData"]
                .iter()
                .map(|k| obj.get(*k).and_then(Value::as_object).map_or(0, Map::len))
                .sum::<usize>();
            vec![name, json!(count), created]
        }
        ("", "ServiceAccount") => vec![name, json!(items(obj, "/secrets").len()), created],
        ("", "PersistentVolume") => {
            let claim = if obj.pointer("/spec/claimRef").is_some_and(Value::is_object) {
                format!(
                    "{}/{}",
                    text(obj, "/spec/claimRef/namespace"),
                    text(obj, "/spec/claimRef/name")
                )
            } else {
                String::new()
            };
            let mut phase = text(obj, "/status/phase").to_string();
            if obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null())
            {
                phase = "Terminating".to_string();
            }
            vec![
                name,
                json!(quantity_text(obj.pointer("/spec/capacity/storage"))),
                json!(access_modes(items(obj, "/spec/accessModes"))),
                json!(text(obj, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase),
                json!(claim),
                json!(storage_class_of(obj)),
                json!(unset(text(obj, "/spec/volumeAttributesClassName"))),
                json!(text(obj, "/status/reason")),
                created,
                json!(unset(text(obj, "/spec/volumeMode"))),
            ]
        }
        ("", "PersistentVolumeClaim") => {
            let mut phase = text(obj, "/status/phase").to_string();
            if obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null())
            {
                phase = "Terminating".to_string();
            }
            let bound = !text(obj, "/spec/volumeName").is_empty();
            let (capacity, modes) = if bound {
                (
                    obj.pointer("/status/capacity/storage")
                        .map(|q| quantity_text(Some(q)))
                        .unwrap_or_default(),
                    access_modes(items(obj, "/status/accessModes")),
                )
            } else {
                (String::new(), String::new())
            };
            vec![
                name,
                json!(phase),
                json!(text(obj, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(storage_class_of(obj)),
                json!(unset(text(obj, "/spec/volumeAttributesClassName"))),
                created,
                json!(unset(text(obj, "/spec/volumeMode"))),
            ]
        }
        ("networking.k8s.io", "Ingress") => {
            let rules = items(obj, "/spec/rules");
            let hosts: Vec<&str> = rules
                .iter()
                .map(|r| text(r, "/host"))
                .filter(|h| !h.is_empty())
                .take(3)
                .collect();
            let hosts_cell = if hosts.is_empty() {
                "*".to_string()
            } else if rules.len() > 3 {
                format!("{} + {} more...", hosts.join(","), rules.len() - 3)
            } else {
                hosts.join(",")
            };
            let addresses: BTreeSet<&str> = items(obj, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    if text(i, "/ip").is_empty() {
                        text(i, "/hostname")
                    } else {
                        text(i, "/ip")
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            let ports = if items(obj, "/spec/tls").is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name,
                json!(or_none(text(obj, "/spec/ingressClassName").to_string())),
                json!(hosts_cell),
                json!(addresses.into_iter().collect::<Vec<_>>().join(",")),
                json!(ports),
                created,
            ]
        }
        ("networking.k8s.io", "IngressClass") => {
            let parameters = match obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
                None => "<none>".to_string(),
                Some(p) => {
                    let mut kind_part = text(p, "/kind").to_string();
                    if let Some(group) = p.get("apiGroup").and_then(Value::as_str) {
                        kind_part = format!("{kind_part}.{group}");
                    }
                    format!("{kind_part}/{}", text(p, "/name"))
                }
            };
            vec![
                name,
                json!(text(obj, "/spec/controller")),
                json!(parameters),
                created,
            ]
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            vec![
                name,
                json!(format_label_selector(Some(
                    obj.pointer("/spec/podSelector").unwrap_or(&json!({}))
                ))),
                created,
            ]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let reference = format!(
                "{}/{}",
                text(obj, "/spec/scaleTargetRef/kind"),
                text(obj, "/spec/scaleTargetRef/name")
            );
            let min = obj
                .pointer("/spec/minReplicas")
                .and_then(Value::as_i64)
                .map(|m| m.to_string())
                .unwrap_or_else(|| "<unset>".to_string());
            vec![
                name,
                json!(reference),
                json!(hpa_targets(obj)),
                json!(min),
                json!(int(obj, "/spec/maxReplicas")),
                json!(int(obj, "/status/currentReplicas")),
                created,
            ]
        }
        ("policy", "PodDisruptionBudget") => vec![
            name,
            json!(int_or_string_text(obj.pointer("/spec/minAvailable"))),
            json!(int_or_string_text(obj.pointer("/spec/maxUnavailable"))),
            json!(int(obj, "/status/disruptionsAllowed")),
            created,
        ],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let (users, groups, service_accounts) = binding_subjects(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    text(obj, "/roleRef/kind"),
                    text(obj, "/roleRef/name")
                )),
                created,
                json!(users),
                json!(groups),
                json!(service_accounts),
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            let holder = obj
                .pointer("/spec/holderIdentity")
                .and_then(Value::as_str)
                .unwrap_or("<unknown>");
            vec![name, json!(holder), created]
        }
        ("storage.k8s.io", "StorageClass") => {
            let is_default = [
                "storageclass.kubernetes.io~1is-default-class",
                "storageclass.beta.kubernetes.io~1is-default-class",
            ]
            .iter()
            .any(|k| text(obj, &format!("/metadata/annotations/{k}")) == "true");
            let display_name = if is_default {
                format!("{} (default)", text(obj, "/metadata/name"))
            } else {
                text(obj, "/metadata/name").to_string()
            };
            let reclaim = obj
                .pointer("/reclaimPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Delete");
            let binding = obj
                .pointer("/volumeBindingMode")
                .and_then(Value::as_str)
                .unwrap_or("Immediate");
            let expansion = obj
                .pointer("/allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                json!(display_name),
                json!(text(obj, "/provisioner")),
                json!(reclaim),
                json!(binding),
                json!(expansion),
                created,
            ]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            name,
            json!(int(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            created,
            json!(unset(text(obj, "/preemptionPolicy"))),
        ],
        ("", "ResourceQuota") => {
            let (requests, limits) = resource_quota_cells(obj);
            vec![name, json!(requests), json!(limits), created]
        }
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => {
            vec![name, json!(items(obj, "/webhooks").len()), created]
        }
        ("apps", "ControllerRevision") => {
            let controller = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                })
                .map(|r| {
                    let api_version = text(r, "/apiVersion");
                    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                    let kind_text = if group.is_empty() {
                        text(r, "/kind").to_lowercase()
                    } else {
                        format!("{}.{group}", text(r, "/kind").to_lowercase())
                    };
                    format!("{kind_text}/{}", text(r, "/name"))
                })
                .unwrap_or_else(|| "<none>".to_string());
            vec![
                name,
                json!(controller),
                json!(int(obj, "/revision")),
                created,
            ]
        }
        _ => return None,
    };
    Some((cells, None))
}

fn column_json(name: &str, kind: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

fn make_row(
    cells: Vec<Value>,
    conditions: Option<Value>,
    obj: &Value,
    include: IncludeObject,
) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    if let Some(conditions) = conditions {
        row.insert("conditions".into(), conditions);
    }
    if let Some(object) = row_object(obj, include) {
        row.insert("object".into(), object);
    }
    Value::Object(row)
}

fn table_value(columns: Vec<Value>, rows: Vec<Value>, with_column_definitions: bool) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": if with_column_definitions { columns } else { Vec::new() },
        "rows": rows,
    })
}

/// Renders `objects` of a built-in kind as a Table. Kinds without a printer get the
/// apiserver's default columns: Name and "Created At" (a date).
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    with_column_definitions: bool,
) -> Value {
    let columns = columns_for(group, kind);
    if columns.is_empty() {
        let definitions = vec![
            column_json("Name", "string", "name", NAME_DESCRIPTION, 0),
            column_json("Created At", "date", "", AGE_DESCRIPTION, 0),
        ];
        let rows = objects
            .iter()
            .map(|obj| {
                let cells = vec![
                    json!(text(obj, "/metadata/name")),
                    json!(text(obj, "/metadata/creationTimestamp")),
                ];
                make_row(cells, None, obj, include_object)
            })
            .collect();
        return table_value(definitions, rows, with_column_definitions);
    }
    let definitions = columns
        .iter()
        .map(|c| {
            let format = if c.name == "Name" { "name" } else { "" };
            column_json(c.name, c.kind, format, c.description, c.priority)
        })
        .collect();
    let rows = objects
        .iter()
        .map(|obj| {
            let (cells, conditions) = row_cells(group, kind, obj, now).unwrap_or_default();
            make_row(cells, conditions, obj, include_object)
        })
        .collect();
    table_value(definitions, rows, with_column_definitions)
}

/// Renders custom resources with their CRD's `additionalPrinterColumns` (each with `name`,
/// `type`, `jsonPath`, optional `format`, `description`, `priority`). No columns means the
/// CRD default: a single Age column from `.metadata.creationTimestamp`.
pub fn custom_resource_table(
    objects: &[Value],
    printer_columns: &[Value],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    with_column_definitions: bool,
) -> Value {
    let default_columns = [
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": AGE_DESCRIPTION}),
    ];
    let printer_columns = if printer_columns.is_empty() {
        &default_columns[..]
    } else {
        printer_columns
    };
    let mut definitions = vec![column_json("Name", "string", "name", NAME_DESCRIPTION, 0)];
    let mut parsed = Vec::new();
    for column in printer_columns {
        let kind = text(column, "/type");
        definitions.push(column_json(
            text(column, "/name"),
            kind,
            text(column, "/format"),
            text(column, "/description"),
            int(column, "/priority"),
        ));
        parsed.push((kind.to_string(), JsonPath::parse(text(column, "/jsonPath"))));
    }
    let rows = objects
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(text(obj, "/metadata/name"))];
            for (kind, path) in &parsed {
                let value = path
                    .as_ref()
                    .ok()
                    .and_then(|p| p.evaluate(obj).into_iter().next());
                cells.push(match value {
                    None => Value::Null,
                    Some(value) => cell_for(kind, value, now),
                });
            }
            make_row(cells, None, obj, include_object)
        })
        .collect();
    table_value(definitions, rows, with_column_definitions)
}

/// Upstream's `cellForJSONValue` plus JSONPath's printing of strings.
fn cell_for(kind: &str, value: &Value, now: DateTime<Utc>) -> Value {
    match kind {
        "string" => match value {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
        "integer" => match value {
            Value::Number(n) => n
                .as_i64()
                .map(|i| json!(i))
                .or_else(|| n.as_f64().map(|f| json!(f as i64)))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(n) => n.as_f64().map(|f| json!(f)).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(b) => json!(b),
            _ => Value::Null,
        },
        "date" => match value.as_str().and_then(parse_time) {
            Some(t) => json!(human_duration(now.signed_duration_since(t))),
            None => Value::Null,
        },
        _ => value.clone(),
    }
}

/// A compiled JSONPath of the subset printer columns use: `.a.b`, `['a.b']`, `[0]`, `[*]`,
/// `[?(@.k=="v")]` (also `!=`), optionally wrapped in `{}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Filter {
        path: Vec<String>,
        equals: bool,
        value: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {reason}")]
pub struct JsonPathError {
    pub path: String,
    pub reason: String,
}

impl JsonPath {
    pub fn parse(expression: &str) -> Result<JsonPath, JsonPathError> {
        let error = |reason: &str| JsonPathError {
            path: expression.to_string(),
            reason: reason.to_string(),
        };
        let mut rest = expression.trim();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            rest = inner.trim();
        }
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let chars: Vec<char> = rest.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        if i == chars.len() {
                            break;
                        }
                        return Err(error("empty field name"));
                    }
                    if name == "*" {
                        steps.push(Step::Wildcard);
                    } else {
                        steps.push(Step::Field(name));
                    }
                }
                '[' => {
                    let close = find_bracket_end(&chars, i).ok_or_else(|| error("unclosed '['"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    steps.push(
                        parse_bracket(inner.trim())
                            .ok_or_else(|| error("unsupported bracket expression"))?,
                    );
                    i = close + 1;
                }
                _ => {
                    // A leading bare name ("spec.replicas").
                    let start = i;
                    while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                        i += 1;
                    }
                    steps.push(Step::Field(chars[start..i].iter().collect()));
                }
            }
        }
        Ok(JsonPath { steps })
    }

    /// All values the path selects, in document order.
    pub fn evaluate<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in current {
                match step {
                    Step::Field(name) => {
                        if let Some(v) = value.get(name.as_str()) {
                            next.push(v);
                        }
                    }
                    Step::Index(index) => {
                        if let Some(array) = value.as_array() {
                            let position = if *index < 0 {
                                array.len() as i64 + index
                            } else {
                                *index
                            };
                            if let Some(v) =
                                usize::try_from(position).ok().and_then(|p| array.get(p))
                            {
                                next.push(v);
                            }
                        }
                    }
                    Step::Wildcard => match value {
                        Value::Array(items) => next.extend(items.iter()),
                        Value::Object(map) => next.extend(map.values()),
                        _ => {}
                    },
                    Step::Filter {
                        path,
                        equals,
                        value: wanted,
                    } => {
                        if let Some(items) = value.as_array() {
                            for item in items {
                                let mut field = Some(item);
                                for key in path {
                                    field = field.and_then(|f| f.get(key.as_str()));
                                }
                                let matched = field.is_some_and(|f| f == wanted);
                                if matched == *equals && (field.is_some() || !*equals) {
                                    next.push(item);
                                }
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

fn find_bracket_end(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for (offset, &c) in chars[open..].iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(text: &str) -> Option<String> {
    let text = text.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return Some(inner.to_string());
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::Wildcard);
    }
    if let Ok(index) = inner.parse::<i64>() {
        return Some(Step::Index(index));
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name));
    }
    let filter = inner.strip_prefix("?(")?.strip_suffix(')')?.trim();
    let (lhs, equals, rhs) = if let Some((l, r)) = filter.split_once("!=") {
        (l, false, r)
    } else {
        let (l, r) = filter.split_once("==")?;
        (l, true, r)
    };
    let path: Vec<String> = lhs
        .trim()
        .strip_prefix("@.")?
        .split('.')
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter {
        path,
        equals,
        value,
    })
}

#[cfg(test)]
mod tests;
