//! The registry of resource kinds the API server serves.
//!
//! One generic REST path serves every entry: built-in kinds are listed here once, and
//! CustomResourceDefinitions add entries at run time. Everything the server needs to route,
//! store, discover and print a kind is in [`ResourceInfo`].

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// The verbs every ordinary resource supports.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource served under `/{resource}/{name}/{subresource}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    pub name: String,
    /// The kind a request to the subresource returns, as (group, version, kind).
    pub response_kind: (String, String, String),
    pub verbs: Vec<String>,
}

/// Extra knowledge about a custom resource, taken from its CRD.
#[derive(Debug, Clone, Default)]
pub struct CustomInfo {
    /// `spec.versions[].schema.openAPIV3Schema` of this version.
    pub schema: Option<Value>,
    /// `spec.versions[].additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// Scale subresource paths: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale: Option<(String, String, Option<String>)>,
    /// The storage version's name: objects are stored in it.
    pub storage_version: String,
    /// Name of the CRD object that declared this resource.
    pub crd_name: String,
}

#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    /// OpenAPI definition name of the kind (empty for custom resources).
    pub definition: String,
    /// True for resources served from a CRD.
    pub custom: Option<CustomInfo>,
    /// Group (and plural) under which objects are stored; two versions of one group share it.
    pub storage_group: String,
    /// Preferred-version order within its group: lower comes first.
    pub version_priority: u32,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` for core, `deployments.apps` otherwise: upstream's qualified resource name.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Pod`, `Deployment.apps`: upstream's qualified kind used in Invalid messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    /// Store key prefix for all objects of this resource (ends with `/`).
    pub fn key_prefix(&self) -> String {
        let group = if self.storage_group.is_empty() {
            "core"
        } else {
            &self.storage_group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Store key prefix for one namespace (or all objects when `namespace` is None).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }

    pub fn object_key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.list_prefix(namespace))
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    verbs: &'static [&'static str],
    package: &'static str,
}

const NS: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const STATUS: &[&str] = &["status"];
const SCALABLE: &[&str] = &["status", "scale"];

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    package: &'static str,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short_names,
        categories,
        subresources,
        verbs: ALL_VERBS,
        package,
    }
}

const CORE: &str = "io.k8s.api.core.v1";

/// Built-in kinds, in upstream's discovery order within each group-version.
fn builtins() -> Vec<Builtin> {
    let create_only: &'static [&'static str] = &["create"];
    vec![
        b("", "v1", "Binding", "bindings", NS, NONE, NONE, NONE, CORE).verbs(create_only),
        b(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            NS,
            &["cm"],
            NONE,
            NONE,
            CORE,
        ),
        b(
            "",
            "v1",
            "Endpoints",
            "endpoints",
            NS,
            &["ep"],
            NONE,
            NONE,
            CORE,
        ),
        b("", "v1", "Event", "events", NS, &["ev"], NONE, NONE, CORE),
        b(
            "",
            "v1",
            "LimitRange",
            "limitranges",
            NS,
            &["limits"],
            NONE,
            NONE,
            CORE,
        ),
        b(
            "",
            "v1",
            "Namespace",
            "namespaces",
            CLUSTER,
            &["ns"],
            NONE,
            &["finalize", "status"],
            CORE,
        ),
        b(
            "",
            "v1",
            "Node",
            "nodes",
            CLUSTER,
            &["no"],
            NONE,
            &["proxy", "status"],
            CORE,
        ),
        b(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            NS,
            &["pvc"],
            NONE,
            STATUS,
            CORE,
        ),
        b(
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            CLUSTER,
            &["pv"],
            NONE,
            STATUS,
            CORE,
        ),
        b(
            "",
            "v1",
            "Pod",
            "pods",
            NS,
            &["po"],
            ALL,
            &[
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status",
            ],
            CORE,
        ),
        b(
            "",
            "v1",
            "PodTemplate",
            "podtemplates",
            NS,
            NONE,
            NONE,
            NONE,
            CORE,
        ),
        b(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            NS,
            &["rc"],
            ALL,
            SCALABLE,
            CORE,
        ),
        b(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            NS,
            &["quota"],
            NONE,
            STATUS,
            CORE,
        ),
        b("", "v1", "Secret", "secrets", NS, NONE, NONE, NONE, CORE),
        b(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            NS,
            &["sa"],
            NONE,
            &["token"],
            CORE,
        ),
        b(
            "",
            "v1",
            "Service",
            "services",
            NS,
            &["svc"],
            ALL,
            &["proxy", "status"],
            CORE,
        ),
        b(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.apps.v1",
        ),
        b(
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            NS,
            &["ds"],
            ALL,
            STATUS,
            "io.k8s.api.apps.v1",
        ),
        b(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            NS,
            &["deploy"],
            ALL,
            SCALABLE,
            "io.k8s.api.apps.v1",
        ),
        b(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            NS,
            &["rs"],
            ALL,
            SCALABLE,
            "io.k8s.api.apps.v1",
        ),
        b(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            NS,
            &["sts"],
            ALL,
            SCALABLE,
            "io.k8s.api.apps.v1",
        ),
        b(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authentication.v1",
        )
        .verbs(create_only),
        b(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authentication.v1",
        )
        .verbs(create_only),
        b(
            "authorization.k8s.io",
            "v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authorization.v1",
        )
        .verbs(create_only),
        b(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authorization.v1",
        )
        .verbs(create_only),
        b(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authorization.v1",
        )
        .verbs(create_only),
        b(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.authorization.v1",
        )
        .verbs(create_only),
        b(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            NS,
            &["hpa"],
            ALL,
            STATUS,
            "io.k8s.api.autoscaling.v2",
        ),
        b(
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            NS,
            &["hpa"],
            ALL,
            STATUS,
            "io.k8s.api.autoscaling.v1",
        ),
        b(
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            NS,
            &["cj"],
            ALL,
            STATUS,
            "io.k8s.api.batch.v1",
        ),
        b(
            "batch",
            "v1",
            "Job",
            "jobs",
            NS,
            NONE,
            ALL,
            STATUS,
            "io.k8s.api.batch.v1",
        ),
        b(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.coordination.v1",
        ),
        b(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.discovery.v1",
        ),
        b(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            NS,
            &["ev"],
            NONE,
            NONE,
            "io.k8s.api.events.v1",
        ),
        b(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.networking.v1",
        ),
        b(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            NS,
            &["ing"],
            NONE,
            STATUS,
            "io.k8s.api.networking.v1",
        ),
        b(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            NS,
            &["netpol"],
            NONE,
            NONE,
            "io.k8s.api.networking.v1",
        ),
        b(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            NS,
            &["pdb"],
            NONE,
            STATUS,
            "io.k8s.api.policy.v1",
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.rbac.v1",
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            CLUSTER,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.rbac.v1",
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.rbac.v1",
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            NS,
            NONE,
            NONE,
            NONE,
            "io.k8s.api.rbac.v1",
        ),
        b(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            CLUSTER,
            &["pc"],
            NONE,
            NONE,
            "io.k8s.api.scheduling.v1",
        ),
        b(
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            CLUSTER,
            &["sc"],
            NONE,
            NONE,
            "io.k8s.api.storage.v1",
        ),
        b(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            CLUSTER,
            &["crd", "crds"],
            &["api-extensions"],
            STATUS,
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
        ),
    ]
}

impl Builtin {
    fn verbs(mut self, verbs: &'static [&'static str]) -> Self {
        self.verbs = verbs;
        self
    }
}

/// The group order upstream's discovery uses (core first, then apps, …); custom groups follow.
const GROUP_ORDER: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

fn subresource_info(owner: &Builtin, name: &str) -> Subresource {
    let s = |g: &str, v: &str, k: &str| (g.to_string(), v.to_string(), k.to_string());
    let own = s(owner.group, owner.version, owner.kind);
    let (response_kind, verbs): (_, &[&str]) = match name {
        "status" => (own, &["get", "patch", "update"]),
        "scale" => (s("autoscaling", "v1", "Scale"), &["get", "patch", "update"]),
        "binding" => (s("", "v1", "Binding"), &["create"]),
        "eviction" => (s("policy", "v1", "Eviction"), &["create"]),
        "log" => (s("", "v1", "Pod"), &["get"]),
        "exec" | "attach" | "portforward" => (s("", "v1", "PodExecOptions"), &["create", "get"]),
        "proxy" => (
            s("", "v1", "PodProxyOptions"),
            &["create", "delete", "get", "patch", "update"],
        ),
        "token" => (
            s("authentication.k8s.io", "v1", "TokenRequest"),
            &["create"],
        ),
        "finalize" => (own, &["update"]),
        "ephemeralcontainers" | "resize" => (own, &["get", "patch", "update"]),
        _ => (own, &["get"]),
    };
    Subresource {
        name: name.to_string(),
        response_kind,
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

fn info_from_builtin(builtin: &Builtin, priority: u32) -> ResourceInfo {
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // events.k8s.io Events and core Events are one stored resource upstream.
    let storage_group = if builtin.group == "events.k8s.io" {
        String::new()
    } else {
        builtin.group.to_string()
    };
    ResourceInfo {
        group: builtin.group.into(),
        version: builtin.version.into(),
        kind: builtin.kind.into(),
        list_kind: format!("{}List", builtin.kind),
        plural: builtin.plural.into(),
        singular: builtin.kind.to_lowercase(),
        namespaced: builtin.namespaced,
        short_names: strs(builtin.short_names),
        categories: strs(builtin.categories),
        verbs: strs(builtin.verbs),
        subresources: builtin
            .subresources
            .iter()
            .map(|s| subresource_info(builtin, s))
            .collect(),
        definition: format!("{}.{}", builtin.package, builtin.kind),
        custom: None,
        storage_group,
        version_priority: priority,
    }
}

/// A snapshot-able, run-time extensible set of resources.
pub struct Registry {
    resources: RwLock<Arc<Vec<Arc<ResourceInfo>>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry holding every built-in kind.
    pub fn new() -> Self {
        let resources = builtins()
            .iter()
            .map(|b| {
                // autoscaling/v2 is preferred over v1, as upstream.
                let priority = if b.group == "autoscaling" && b.version == "v1" {
                    1
                } else {
                    0
                };
                Arc::new(info_from_builtin(b, priority))
            })
            .collect();
        Registry {
            resources: RwLock::new(Arc::new(resources)),
        }
    }

    /// The current set of resources; cheap to call, never blocks writers for long.
    pub fn snapshot(&self) -> Arc<Vec<Arc<ResourceInfo>>> {
        self.resources.read().expect("registry lock").clone()
    }

    /// Resolves a request path's (group, version, plural).
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.snapshot()
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.snapshot()
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .cloned()
    }

    /// Every served version of one group and plural, preferred first.
    pub fn versions_of(&self, group: &str, plural: &str) -> Vec<Arc<ResourceInfo>> {
        let mut found: Vec<_> = self
            .snapshot()
            .iter()
            .filter(|r| r.group == group && r.plural == plural)
            .cloned()
            .collect();
        found.sort_by_key(|r| r.version_priority);
        found
    }

    /// Groups in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let snapshot = self.snapshot();
        let mut groups: Vec<(String, Vec<(u32, String)>)> = Vec::new();
        for r in snapshot.iter() {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.iter().any(|(_, v)| *v == r.version) {
                        versions.push((r.version_priority, r.version.clone()));
                    }
                }
                None => groups.push((
                    r.group.clone(),
                    vec![(r.version_priority, r.version.clone())],
                )),
            }
        }
        let rank = |g: &str| {
            GROUP_ORDER
                .iter()
                .position(|o| *o == g)
                .unwrap_or(GROUP_ORDER.len())
        };
        groups.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then_with(|| a.0.cmp(&b.0)));
        groups
            .into_iter()
            .map(|(g, mut versions)| {
                versions.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| version_order(&b.1, &a.1)));
                (g, versions.into_iter().map(|(_, v)| v).collect())
            })
            .collect()
    }

    /// Resources of one group-version, in registration order.
    pub fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.snapshot()
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .cloned()
            .collect()
    }

    /// Replaces every resource declared by the CRD `crd_name` with `infos`.
    pub fn set_custom(&self, crd_name: &str, infos: Vec<ResourceInfo>) {
        let mut guard = self.resources.write().expect("registry lock");
        let mut next: Vec<Arc<ResourceInfo>> = guard
            .iter()
            .filter(|r| r.custom.as_ref().is_none_or(|c| c.crd_name != crd_name))
            .cloned()
            .collect();
        next.extend(infos.into_iter().map(Arc::new));
        *guard = Arc::new(next);
    }

    /// Names of the CRDs currently contributing resources.
    pub fn custom_crd_names(&self) -> BTreeSet<String> {
        self.snapshot()
            .iter()
            .filter_map(|r| r.custom.as_ref().map(|c| c.crd_name.clone()))
            .collect()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, then by number (`v2` > `v1` > `v1beta1`).
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn rank(v: &str) -> (u32, u32, u32) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0);
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        let (stability, minor) = if tail.is_empty() {
            (3, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (2, n.parse().unwrap_or(0))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, n.parse().unwrap_or(0))
        } else {
            (0, 0)
        };
        (stability, major, minor)
    }
    rank(a).cmp(&rank(b))
}

/// Builds the registry entries a CRD declares (one per served version).
pub fn crd_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut served: Vec<&Value> = versions
        .iter()
        .filter(|v| v["served"].as_bool() != Some(false))
        .collect();
    served.sort_by(|a, b| {
        version_order(
            b["name"].as_str().unwrap_or_default(),
            a["name"].as_str().unwrap_or_default(),
        )
    });
    served
        .iter()
        .enumerate()
        .map(|(priority, v)| {
            let version = v["name"].as_str().unwrap_or_default().to_string();
            let mut subresources = Vec::new();
            let own = (group.clone(), version.clone(), kind.clone());
            if v["subresources"]["status"].is_object() {
                subresources.push(Subresource {
                    name: "status".into(),
                    response_kind: own.clone(),
                    verbs: vec!["get".into(), "patch".into(), "update".into()],
                });
            }
            let scale = v["subresources"]["scale"].as_object().map(|s| {
                subresources.push(Subresource {
                    name: "scale".into(),
                    response_kind: ("autoscaling".into(), "v1".into(), "Scale".into()),
                    verbs: vec!["get".into(), "patch".into(), "update".into()],
                });
                (
                    s.get("specReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".spec.replicas")
                        .to_string(),
                    s.get("statusReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    s.get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
            });
            ResourceInfo {
                group: group.clone(),
                version: version.clone(),
                kind: kind.clone(),
                list_kind: list_kind.clone(),
                plural: plural.clone(),
                singular: singular.clone(),
                namespaced,
                short_names: strs(&names["shortNames"]),
                categories: strs(&names["categories"]),
                verbs: ALL_VERBS.iter().map(|v| v.to_string()).collect(),
                subresources,
                definition: String::new(),
                custom: Some(CustomInfo {
                    schema: v["schema"].get("openAPIV3Schema").cloned(),
                    printer_columns: v["additionalPrinterColumns"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    scale,
                    storage_version: storage_version.clone(),
                    crd_name: crd_name.clone(),
                }),
                storage_group: group.clone(),
                version_priority: priority as u32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_resolve_by_path_and_kind() {
        let reg = Registry::new();
        let deploy = reg.lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.kind, "Deployment");
        assert!(deploy.has_subresource("scale"));
        assert_eq!(deploy.definition, "io.k8s.api.apps.v1.Deployment");
        assert_eq!(
            deploy.object_key(Some("ns"), "web"),
            "/registry/apps/deployments/ns/web"
        );
        let ns = reg.lookup_kind("", "v1", "Namespace").unwrap();
        assert!(!ns.namespaced);
        assert_eq!(
            ns.object_key(Some("ignored"), "default"),
            "/registry/core/namespaces/default"
        );
        assert_eq!(
            reg.versions_of("autoscaling", "horizontalpodautoscalers")[0].version,
            "v2"
        );
    }

    #[test]
    fn groups_are_in_discovery_order_with_preferred_version_first() {
        let groups = Registry::new().groups();
        assert_eq!(groups[0].0, "");
        assert_eq!(groups[1].0, "apps");
        let autoscaling = groups.iter().find(|g| g.0 == "autoscaling").unwrap();
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
    }

    #[test]
    fn version_ordering_matches_kubernetes() {
        let mut v = vec!["v1beta1", "v2", "v1alpha1", "v1", "v1beta2"];
        v.sort_by(|a, b| version_order(b, a));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1"]);
    }

    #[test]
    fn crd_declares_served_versions_with_subresources() {
        let crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}}},
                    {"name": "v0", "served": false, "storage": false}
                ]
            }
        });
        let infos = crd_resources(&crd);
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].version, "v1");
        assert!(infos[0].has_subresource("scale"));
        assert!(!infos[1].has_subresource("status"));
        let reg = Registry::new();
        reg.set_custom("widgets.example.com", infos);
        assert!(reg.lookup("example.com", "v1", "widgets").is_some());
        reg.set_custom("widgets.example.com", vec![]);
        assert!(reg.lookup("example.com", "v1", "widgets").is_none());
    }
}
