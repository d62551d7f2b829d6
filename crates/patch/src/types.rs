//! Type information the patch algorithms need: field types (from the OpenAPI definitions, supplied
//! by the caller through [`TypeResolver`]) and list/map patch metadata (a built-in table, because the
//! published schemas used by the server do not carry the Go struct tags).

/// The type of one field of an OpenAPI definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// A struct-like object, named by its OpenAPI definition (`io.k8s.api.core.v1.PodSpec`).
    Object(String),
    /// A list of the given element type.
    Array(Box<FieldType>),
    /// A string-keyed map (`additionalProperties`) of the given value type.
    Map(Box<FieldType>),
    /// A string, number, boolean, or a value kept whole (quantities, int-or-string, raw JSON).
    Scalar,
    /// Nothing is known: maps merge, lists are replaced.
    Unknown,
}

/// Resolves the type of `field` inside the OpenAPI definition `def`.
pub trait TypeResolver: Send + Sync {
    fn field_type(&self, def: &str, field: &str) -> Option<FieldType>;
}

/// A resolver that knows nothing, for kinds without a schema: maps merge and lists are replaced.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTypes;

impl TypeResolver for NoTypes {
    fn field_type(&self, _def: &str, _field: &str) -> Option<FieldType> {
        None
    }
}

pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// How a strategic merge patch combines a field with the live value (upstream `patchStrategy` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Lists merge element-wise (by merge key, or as a set of scalars); maps merge.
    Merge,
    /// The patch value replaces the live value.
    Replace,
    /// Maps/elements may carry `$retainKeys`; values otherwise merge like a map.
    RetainKeys,
    /// `merge,retainKeys`: a merging list whose elements may carry `$retainKeys`.
    MergeRetainKeys,
}

impl ListStrategy {
    pub fn merges_lists(self) -> bool {
        matches!(self, ListStrategy::Merge | ListStrategy::MergeRetainKeys)
    }
}

/// How server-side apply tracks ownership of a list (upstream `+listType` / `+listMapKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// The list is owned and replaced as a whole.
    Atomic,
    /// A set of scalars; each value is owned separately (`v:"x"`).
    Set,
    /// A list of objects keyed by these fields; each item is owned separately (`k:{...}`).
    Map(&'static [&'static str]),
}

/// Patch metadata of one field of a built-in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListMeta {
    pub strategy: ListStrategy,
    pub merge_key: Option<&'static str>,
    pub list_type: ListType,
}

const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";
const BATCH: &str = "io.k8s.api.batch.v1.";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

use ListStrategy::{Merge, MergeRetainKeys, Replace, RetainKeys};
use ListType::{Atomic, Map, Set};

type Row = (
    &'static str,
    &'static str,
    &'static str,
    ListStrategy,
    Option<&'static str>,
    ListType,
);

/// Fields whose Go struct tags differ from the default (replace / atomic). Taken from the
/// `patchStrategy`, `patchMergeKey`, `+listType` and `+listMapKey` markers of the upstream API types.
const TABLE: &[Row] = &[
    (
        META,
        "ObjectMeta",
        "ownerReferences",
        Merge,
        Some("uid"),
        Map(&["uid"]),
    ),
    (META, "ObjectMeta", "finalizers", Merge, None, Set),
    (META, "ObjectMeta", "managedFields", Replace, None, Atomic),
    (
        CORE,
        "PodSpec",
        "volumes",
        MergeRetainKeys,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "initContainers",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "containers",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "ephemeralContainers",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "imagePullSecrets",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "hostAliases",
        Merge,
        Some("ip"),
        Map(&["ip"]),
    ),
    (
        CORE,
        "PodSpec",
        "topologySpreadConstraints",
        Merge,
        Some("topologyKey"),
        Map(&["topologyKey", "whenUnsatisfiable"]),
    ),
    (
        CORE,
        "PodSpec",
        "schedulingGates",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "PodSpec",
        "resourceClaims",
        MergeRetainKeys,
        Some("name"),
        Map(&["name"]),
    ),
    (CORE, "PodSpec", "tolerations", Replace, None, Atomic),
    (CORE, "PodSpec", "readinessGates", Replace, None, Atomic),
    (
        CORE,
        "PodStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (CORE, "PodStatus", "podIPs", Merge, Some("ip"), Map(&["ip"])),
    (CORE, "PodStatus", "hostIPs", Merge, Some("ip"), Atomic),
    (
        CORE,
        "PodStatus",
        "resourceClaimStatuses",
        MergeRetainKeys,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "Container",
        "ports",
        Merge,
        Some("containerPort"),
        Map(&["containerPort", "protocol"]),
    ),
    (
        CORE,
        "Container",
        "env",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (CORE, "Container", "envFrom", Replace, None, Atomic),
    (
        CORE,
        "Container",
        "volumeMounts",
        Merge,
        Some("mountPath"),
        Map(&["mountPath"]),
    ),
    (
        CORE,
        "Container",
        "volumeDevices",
        Merge,
        Some("devicePath"),
        Map(&["devicePath"]),
    ),
    (CORE, "Container", "resizePolicy", Replace, None, Atomic),
    (
        CORE,
        "EphemeralContainer",
        "ports",
        Merge,
        Some("containerPort"),
        Map(&["containerPort", "protocol"]),
    ),
    (
        CORE,
        "EphemeralContainer",
        "env",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "EphemeralContainer",
        "volumeMounts",
        Merge,
        Some("mountPath"),
        Map(&["mountPath"]),
    ),
    (
        CORE,
        "EphemeralContainer",
        "volumeDevices",
        Merge,
        Some("devicePath"),
        Map(&["devicePath"]),
    ),
    (
        CORE,
        "ContainerStatus",
        "volumeMounts",
        Merge,
        Some("mountPath"),
        Map(&["mountPath"]),
    ),
    (
        CORE,
        "ContainerStatus",
        "allocatedResourcesStatus",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        CORE,
        "ContainerRestartRuleOnExitCodes",
        "values",
        Replace,
        None,
        Set,
    ),
    (
        CORE,
        "ResourceRequirements",
        "claims",
        Replace,
        None,
        Map(&["name"]),
    ),
    (
        CORE,
        "ResourceStatus",
        "resources",
        Replace,
        None,
        Map(&["resourceID"]),
    ),
    (
        CORE,
        "ServiceSpec",
        "ports",
        Merge,
        Some("port"),
        Map(&["port", "protocol"]),
    ),
    (
        CORE,
        "ServiceStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "ServiceAccount",
        "secrets",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (CORE, "NodeSpec", "podCIDRs", Merge, None, Set),
    (CORE, "NodeSpec", "taints", Replace, None, Atomic),
    (
        CORE,
        "NodeStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "NodeStatus",
        "addresses",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "NamespaceStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "PersistentVolumeClaimStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "ReplicationControllerStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        CORE,
        "ComponentStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (APPS, "DeploymentSpec", "strategy", RetainKeys, None, Atomic),
    (
        APPS,
        "DeploymentStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        APPS,
        "ReplicaSetStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        APPS,
        "StatefulSetStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        APPS,
        "DaemonSetStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        BATCH,
        "JobStatus",
        "conditions",
        Merge,
        Some("type"),
        Atomic,
    ),
    (
        BATCH,
        "UncountedTerminatedPods",
        "succeeded",
        Replace,
        None,
        Set,
    ),
    (
        BATCH,
        "UncountedTerminatedPods",
        "failed",
        Replace,
        None,
        Set,
    ),
    (
        BATCH,
        "PodFailurePolicyOnExitCodesRequirement",
        "values",
        Replace,
        None,
        Set,
    ),
    (
        "io.k8s.api.policy.v1.",
        "PodDisruptionBudgetStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        "io.k8s.api.policy.v1.",
        "PodDisruptionBudgetSpec",
        "selector",
        Replace,
        None,
        Atomic,
    ),
    (
        "io.k8s.api.autoscaling.v2.",
        "HorizontalPodAutoscalerStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        "io.k8s.api.networking.v1.",
        "ServiceCIDRStatus",
        "conditions",
        Merge,
        Some("type"),
        Map(&["type"]),
    ),
    (
        "io.k8s.api.discovery.v1.",
        "Endpoint",
        "addresses",
        Replace,
        None,
        Set,
    ),
    (
        "io.k8s.api.storage.v1.",
        "CSINodeSpec",
        "drivers",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.storage.v1.",
        "CSIDriverSpec",
        "volumeLifecycleModes",
        Replace,
        None,
        Set,
    ),
    (
        "io.k8s.api.certificates.v1.",
        "CertificateSigningRequestStatus",
        "conditions",
        Replace,
        None,
        Map(&["type"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "MutatingWebhookConfiguration",
        "webhooks",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingWebhookConfiguration",
        "webhooks",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "MutatingWebhook",
        "matchConditions",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingWebhook",
        "matchConditions",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingAdmissionPolicySpec",
        "matchConditions",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingAdmissionPolicySpec",
        "variables",
        Merge,
        Some("name"),
        Map(&["name"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingAdmissionPolicyStatus",
        "conditions",
        Replace,
        None,
        Map(&["type"]),
    ),
    (
        "io.k8s.api.admissionregistration.v1.",
        "ValidatingAdmissionPolicyBindingSpec",
        "validationActions",
        Replace,
        None,
        Set,
    ),
];

/// Patch metadata for `field` of definition `def`, or `None` for the default (replace, atomic).
pub fn list_meta(def: &str, field: &str) -> Option<ListMeta> {
    TABLE
        .iter()
        .find_map(|(group, kind, name, strategy, merge_key, list_type)| {
            let matches = *name == field
                && def.len() == group.len() + kind.len()
                && def.starts_with(group)
                && def.ends_with(kind);
            matches.then_some(ListMeta {
                strategy: *strategy,
                merge_key: *merge_key,
                list_type: *list_type,
            })
        })
}

/// Definitions marked `+structType=atomic` upstream: server-side apply owns them as a whole.
const ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.FileKeySelector",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
];

pub(crate) fn is_atomic_struct(ty: &FieldType) -> bool {
    matches!(ty, FieldType::Object(def) if ATOMIC_STRUCTS.contains(&def.as_str()))
}

/// The shape of a JSON object being walked: which fields it declares and what their types are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A definition: named fields, looked up through the resolver and the metadata table.
    Def(String),
    /// A string-keyed map whose values all have one type.
    MapOf(FieldType),
    /// No information.
    Unknown,
}

/// What is known about one child of an object.
#[derive(Debug, Clone)]
pub(crate) struct Child {
    pub ty: FieldType,
    pub meta: Option<ListMeta>,
    /// True for a named field of a definition, false for an entry of a string-keyed map.
    pub declared: bool,
}

pub(crate) struct Types<'a> {
    pub resolver: &'a dyn TypeResolver,
    pub root: &'a str,
}

impl Types<'_> {
    pub fn root_shape(&self) -> Shape {
        if self.root.is_empty() {
            Shape::Unknown
        } else {
            Shape::Def(self.root.to_string())
        }
    }

    pub fn child(&self, parent: &Shape, key: &str) -> Child {
        match parent {
            Shape::Def(def) => {
                let ty = self.resolver.field_type(def, key).unwrap_or_else(|| {
                    // Every top-level kind has ObjectMeta, even when the resolver knows nothing.
                    if def == self.root && key == "metadata" {
                        FieldType::Object(OBJECT_META.to_string())
                    } else {
                        FieldType::Unknown
                    }
                });
                Child {
                    ty,
                    meta: list_meta(def, key),
                    declared: true,
                }
            }
            Shape::MapOf(value_type) => Child {
                ty: value_type.clone(),
                meta: None,
                declared: false,
            },
            Shape::Unknown => Child {
                ty: FieldType::Unknown,
                meta: None,
                declared: true,
            },
        }
    }
}

/// The shape of a map-valued field of the given type.
pub(crate) fn shape_of(ty: &FieldType) -> Shape {
    match ty {
        FieldType::Object(def) => Shape::Def(def.clone()),
        FieldType::Map(value_type) => Shape::MapOf((**value_type).clone()),
        _ => Shape::Unknown,
    }
}

/// The element type of a list-valued field of the given type.
pub(crate) fn element_type(ty: &FieldType) -> FieldType {
    match ty {
        FieldType::Array(elem) => (**elem).clone(),
        _ => FieldType::Unknown,
    }
}

#[cfg(test)]
pub(crate) mod test_types {
    use super::*;

    /// A hand-made resolver covering the kinds the tests use.
    pub struct TestTypes;

    fn obj(name: &str) -> Option<FieldType> {
        Some(FieldType::Object(name.to_string()))
    }
    fn arr(t: FieldType) -> Option<FieldType> {
        Some(FieldType::Array(Box::new(t)))
    }
    fn arr_of(name: &str) -> Option<FieldType> {
        arr(FieldType::Object(name.to_string()))
    }
    fn map_of_strings() -> Option<FieldType> {
        Some(FieldType::Map(Box::new(FieldType::Scalar)))
    }

    impl TypeResolver for TestTypes {
        fn field_type(&self, def: &str, field: &str) -> Option<FieldType> {
            let core = |s: &str| format!("io.k8s.api.core.v1.{s}");
            let short = def.rsplit('.').next().unwrap_or(def);
            match (short, field) {
                (_, "metadata")
                    if matches!(
                        short,
                        "Deployment" | "Service" | "Node" | "PodTemplateSpec" | "ConfigMap"
                    ) =>
                {
                    obj(OBJECT_META)
                }
                ("Deployment", "spec") => obj("io.k8s.api.apps.v1.DeploymentSpec"),
                ("DeploymentSpec", "template") => obj(&core("PodTemplateSpec")),
                ("DeploymentSpec", "selector") => {
                    obj("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
                }
                ("DeploymentSpec", "strategy") => obj("io.k8s.api.apps.v1.DeploymentStrategy"),
                ("DeploymentStrategy", "rollingUpdate") => {
                    obj("io.k8s.api.apps.v1.RollingUpdateDeployment")
                }
                ("LabelSelector", "matchLabels") => map_of_strings(),
                ("PodTemplateSpec", "spec") => obj(&core("PodSpec")),
                ("PodSpec", "containers" | "initContainers") => arr_of(&core("Container")),
                ("PodSpec", "volumes") => arr_of(&core("Volume")),
                ("PodSpec", "tolerations") => arr_of(&core("Toleration")),
                ("PodSpec", "nodeSelector") => map_of_strings(),
                ("Volume", "configMap") => obj(&core("ConfigMapVolumeSource")),
                ("Volume", "emptyDir") => obj(&core("EmptyDirVolumeSource")),
                ("Container", "env") => arr_of(&core("EnvVar")),
                ("Container", "ports") => arr_of(&core("ContainerPort")),
                ("Container", "volumeMounts") => arr_of(&core("VolumeMount")),
                ("Container", "args" | "command") => arr(FieldType::Scalar),
                ("Container", "resources") => obj(&core("ResourceRequirements")),
                ("ResourceRequirements", "limits" | "requests") => map_of_strings(),
                ("EnvVar", "valueFrom") => obj(&core("EnvVarSource")),
                ("Service", "spec") => obj(&core("ServiceSpec")),
                ("ServiceSpec", "ports") => arr_of(&core("ServicePort")),
                ("ServiceSpec", "selector") => map_of_strings(),
                ("Node", "spec") => obj(&core("NodeSpec")),
                ("NodeSpec", "taints") => arr_of(&core("Taint")),
                ("ObjectMeta", "labels" | "annotations") => map_of_strings(),
                ("ObjectMeta", "finalizers") => arr(FieldType::Scalar),
                ("ObjectMeta", "ownerReferences") => {
                    arr_of("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference")
                }
                ("ConfigMap", "data") => map_of_strings(),
                (_, _) => Some(FieldType::Scalar).filter(|_| {
                    matches!(
                        field,
                        "name"
                            | "image"
                            | "value"
                            | "replicas"
                            | "containerPort"
                            | "port"
                            | "protocol"
                            | "mountPath"
                            | "key"
                            | "effect"
                            | "type"
                            | "uid"
                            | "paused"
                            | "unschedulable"
                            | "namespace"
                            | "hostPort"
                            | "targetPort"
                            | "maxSurge"
                            | "maxUnavailable"
                    )
                }),
            }
        }
    }

    pub const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
    pub const SERVICE: &str = "io.k8s.api.core.v1.Service";
    pub const NODE: &str = "io.k8s.api.core.v1.Node";
}
