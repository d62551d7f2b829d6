//! Object validation with upstream's field paths and messages (`pkg/apis/*/validation`).
//!
//! `validate` runs on defaulted objects, as the apiserver does: a field that defaulting always
//! fills in is reported as `Required value` when it is missing.

mod apps;
mod core;

mod extra;
pub mod names;
mod pod;
pub mod quantity;

use serde_json::{Map, Value};

pub use crate::cron::parse_schedule;

/// Upstream's `field.ErrorType`, named by its `reason` string in `Status.details.causes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    FieldValueNotFound,
    FieldValueRequired,
    FieldValueDuplicate,
    FieldValueInvalid,
    FieldValueNotSupported,
    FieldValueForbidden,
    FieldValueTooLong,
    FieldValueTooMany,
    FieldValueTypeInvalid,
    InternalError,
}

impl ErrorType {
    /// The `reason` of a Status cause.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::FieldValueNotFound => "FieldValueNotFound",
            ErrorType::FieldValueRequired => "FieldValueRequired",
            ErrorType::FieldValueDuplicate => "FieldValueDuplicate",
            ErrorType::FieldValueInvalid => "FieldValueInvalid",
            ErrorType::FieldValueNotSupported => "FieldValueNotSupported",
            ErrorType::FieldValueForbidden => "FieldValueForbidden",
            ErrorType::FieldValueTooLong => "FieldValueTooLong",
            ErrorType::FieldValueTooMany => "FieldValueTooMany",
            ErrorType::FieldValueTypeInvalid => "FieldValueTypeInvalid",
            ErrorType::InternalError => "InternalError",
        }
    }

    /// The human text that starts an error's message.
    pub fn description(self) -> &'static str {
        match self {
            ErrorType::FieldValueNotFound => "Not found",
            ErrorType::FieldValueRequired => "Required value",
            ErrorType::FieldValueDuplicate => "Duplicate value",
            ErrorType::FieldValueInvalid | ErrorType::FieldValueTypeInvalid => "Invalid value",
            ErrorType::FieldValueNotSupported => "Unsupported value",
            ErrorType::FieldValueForbidden => "Forbidden",
            ErrorType::FieldValueTooLong => "Too long",
            ErrorType::FieldValueTooMany => "Too many",
            ErrorType::InternalError => "Internal error",
        }
    }
}

/// One validation failure: the field path, its type and upstream's `ErrorBody` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: ErrorType,
    pub message: String,
}

/// Go's rendering of a bad value inside messages: strings quoted, scalars bare, else JSON.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

impl FieldError {
    fn with_detail(field: &str, reason: ErrorType, head: String, detail: &str) -> FieldError {
        let message = if detail.is_empty() {
            head
        } else {
            format!("{head}: {detail}")
        };
        FieldError {
            field: field.to_string(),
            reason,
            message,
        }
    }

    pub fn required(field: &str, detail: &str) -> FieldError {
        let t = ErrorType::FieldValueRequired;
        Self::with_detail(field, t, t.description().into(), detail)
    }

    pub fn forbidden(field: &str, detail: &str) -> FieldError {
        let t = ErrorType::FieldValueForbidden;
        Self::with_detail(field, t, t.description().into(), detail)
    }

    pub fn invalid(field: &str, value: impl Into<Value>, detail: &str) -> FieldError {
        let t = ErrorType::FieldValueInvalid;
        let head = format!("{}: {}", t.description(), render_value(&value.into()));
        Self::with_detail(field, t, head, detail)
    }

    pub fn type_invalid(field: &str, value: impl Into<Value>, detail: &str) -> FieldError {
        let t = ErrorType::FieldValueTypeInvalid;
        let head = format!("{}: {}", t.description(), render_value(&value.into()));
        Self::with_detail(field, t, head, detail)
    }

    pub fn not_supported(field: &str, value: impl Into<Value>, supported: &[&str]) -> FieldError {
        let t = ErrorType::FieldValueNotSupported;
        let head = format!("{}: {}", t.description(), render_value(&value.into()));
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let detail = if quoted.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", quoted.join(", "))
        };
        Self::with_detail(field, t, head, &detail)
    }

    pub fn duplicate(field: &str, value: impl Into<Value>) -> FieldError {
        let t = ErrorType::FieldValueDuplicate;
        let head = format!("{}: {}", t.description(), render_value(&value.into()));
        Self::with_detail(field, t, head, "")
    }

    pub fn not_found(field: &str, value: impl Into<Value>) -> FieldError {
        let t = ErrorType::FieldValueNotFound;
        let head = format!("{}: {}", t.description(), render_value(&value.into()));
        Self::with_detail(field, t, head, "")
    }

    pub fn too_long(field: &str, max_bytes: usize) -> FieldError {
        let t = ErrorType::FieldValueTooLong;
        let detail = format!("may not be more than {max_bytes} bytes");
        Self::with_detail(field, t, t.description().into(), &detail)
    }

    pub fn immutable(field: &str, value: impl Into<Value>) -> FieldError {
        Self::invalid(field, value, "field is immutable")
    }
}

/// `field: message`, as `field.Error.Error()` prints it.
pub fn format_field_error(error: &FieldError) -> String {
    format!("{}: {}", error.field, error.message)
}

/// Upstream's `NewInvalid` message: `Kind.group "name" is invalid: <aggregate>`, where `kind`
/// is the qualified kind (`Deployment.apps`, or `Pod` for the core group). One error prints
/// bare, several in brackets; identical messages are reported once, as the aggregate does.
pub fn invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let mut messages: Vec<String> = Vec::new();
    for error in errors {
        let text = format_field_error(error);
        if !messages.contains(&text) {
            messages.push(text);
        }
    }
    let aggregate = match messages.len() {
        1 => messages.remove(0),
        _ => format!("[{}]", messages.join(", ")),
    };
    format!("{kind} {name:?} is invalid: {aggregate}")
}

/// How a kind's `metadata.name` is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
    PathSegment,
}

impl NameRule {
    pub fn for_kind(group: &str, kind: &str) -> NameRule {
        match (group, kind) {
            ("", "Namespace") => NameRule::Dns1123Label,
            ("", "Service") => NameRule::Dns1035Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Detail messages for `name`; `prefix` is for `generateName`, where a trailing dash is fine.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            masked = format!("{}a", &name[..name.len() - 1]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::Dns1123Subdomain => names::is_dns1123_subdomain(name),
            NameRule::Dns1123Label => names::is_dns1123_label(name),
            NameRule::Dns1035Label => names::is_dns1035_label(name),
            NameRule::PathSegment => names::is_path_segment_name(name),
        }
    }
}

/// The scope of built-in kinds; `None` for kinds this table does not know (custom resources).
pub fn known_namespaced(group: &str, kind: &str) -> Option<bool> {
    let cluster_scoped = matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | (
            "rbac.authorization.k8s.io",
            "ClusterRole" | "ClusterRoleBinding"
        ) | (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
        ) | ("scheduling.k8s.io", "PriorityClass")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | ("networking.k8s.io", "IngressClass")
            | ("node.k8s.io", "RuntimeClass")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
    );
    if cluster_scoped {
        return Some(false);
    }
    let namespaced = matches!(
        (group, kind),
        (
            "",
            "Pod"
                | "PodTemplate"
                | "ReplicationController"
                | "Service"
                | "Endpoints"
                | "ConfigMap"
                | "Secret"
                | "ServiceAccount"
                | "Event"
                | "LimitRange"
                | "ResourceQuota"
                | "PersistentVolumeClaim"
        ) | (
            "apps",
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ControllerRevision"
        ) | ("batch", "Job" | "CronJob")
            | ("coordination.k8s.io", "Lease")
            | ("events.k8s.io", "Event")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("networking.k8s.io", "Ingress" | "NetworkPolicy")
            | ("policy", "PodDisruptionBudget")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
    );
    namespaced.then_some(true)
}

/// Validates `obj` of `group`/`kind` (and the update from `old` when given). The scope comes
/// from [`known_namespaced`]; unknown kinds skip the namespace presence check.
pub fn validate(group: &str, kind: &str, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    validate_with_scope(group, kind, obj, old, known_namespaced(group, kind))
}

/// Like [`validate`] with the scope given by the caller (`None`: do not check it).
pub fn validate_with_scope(
    group: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    namespaced: Option<bool>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(root) = obj.as_object() else {
        errs.push(FieldError::type_invalid(
            "",
            obj.clone(),
            "must be an object",
        ));
        return errs;
    };
    let rule = NameRule::for_kind(group, kind);
    errs.extend(meta_errors(obj, namespaced, rule));
    if let Some(old) = old {
        errs.extend(validate_object_meta_update(obj, old));
    }
    let ctx = Ctx {
        root,
        value: obj,
        old,
    };
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(&ctx, &mut errs),
        ("", "PodTemplate") => pod::validate_pod_template_object(&ctx, &mut errs),
        ("", "ReplicationController") => apps::validate_replication_controller(&ctx, &mut errs),
        ("apps", "Deployment") => apps::validate_deployment(&ctx, &mut errs),
        ("apps", "ReplicaSet") => apps::validate_replica_set(&ctx, &mut errs),
        ("apps", "DaemonSet") => apps::validate_daemon_set(&ctx, &mut errs),
        ("apps", "StatefulSet") => apps::validate_stateful_set(&ctx, &mut errs),
        ("batch", "Job") => apps::validate_job(&ctx, &mut errs),
        ("batch", "CronJob") => apps::validate_cron_job(&ctx, &mut errs),
        ("", "Service") => core::validate_service(&ctx, &mut errs),
        ("", "ConfigMap") => core::validate_config_map(&ctx, &mut errs),
        ("", "Secret") => core::validate_secret(&ctx, &mut errs),
        ("", "Namespace") => core::validate_namespace(&ctx, &mut errs),
        ("", "Node") => core::validate_node(&ctx, &mut errs),
        ("", "Event") => core::validate_event(&ctx, &mut errs),
        ("", "PersistentVolumeClaim") => core::validate_pvc(&ctx, &mut errs),
        ("coordination.k8s.io", "Lease") => core::validate_lease(&ctx, &mut errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => core::validate_crd(&ctx, &mut errs),
        ("rbac.authorization.k8s.io", _) => core::validate_rbac(kind, &ctx, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => extra::validate_hpa(&ctx, &mut errs),
        ("policy", "PodDisruptionBudget") => extra::validate_pdb(&ctx, &mut errs),
        ("networking.k8s.io", "Ingress") => extra::validate_ingress(&ctx, &mut errs),
        ("networking.k8s.io", "NetworkPolicy") => extra::validate_network_policy(&ctx, &mut errs),
        ("scheduling.k8s.io", "PriorityClass") => extra::validate_priority_class(&ctx, &mut errs),
        ("storage.k8s.io", "StorageClass") => extra::validate_storage_class(&ctx, &mut errs),
        ("", "PersistentVolume") => extra::validate_pv(&ctx, &mut errs),
        _ => {}
    }
    errs
}

/// Upstream's `ValidateObjectMeta`: name/generateName, namespace by scope, labels,
/// annotations, finalizers, owner references and generation.
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_rule: NameRule) -> Vec<FieldError> {
    meta_errors(obj, Some(namespaced), name_rule)
}

fn meta_errors(obj: &Value, namespaced: Option<bool>, name_rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Map::new();
    let meta = match obj.get("metadata") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(meta)) => meta,
        Some(other) => {
            errs.push(FieldError::type_invalid(
                "metadata",
                other.clone(),
                "must be an object",
            ));
            return errs;
        }
    };
    let name = str_field(meta, "name", "metadata.name", &mut errs).unwrap_or("");
    let generate_name =
        str_field(meta, "generateName", "metadata.generateName", &mut errs).unwrap_or("");
    if !generate_name.is_empty() {
        for msg in name_rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_rule.check(name, false) {
            errs.push(FieldError::invalid("metadata.name", name, &msg));
        }
    }
    let namespace = str_field(meta, "namespace", "metadata.namespace", &mut errs).unwrap_or("");
    match namespaced {
        Some(true) if namespace.is_empty() => {
            errs.push(FieldError::required("metadata.namespace", ""));
        }
        Some(false) if !namespace.is_empty() => {
            errs.push(FieldError::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        }
        _ => {}
    }
    if !namespace.is_empty() && namespaced != Some(false) {
        for msg in names::is_dns1123_label(namespace) {
            errs.push(FieldError::invalid("metadata.namespace", namespace, &msg));
        }
    }
    if let Some(labels) = map_field(meta, "labels", "metadata.labels", &mut errs) {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = map_field(meta, "annotations", "metadata.annotations", &mut errs) {
        errs.extend(validate_annotations(annotations, "metadata.annotations"));
    }
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errs.push(FieldError::invalid(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    for finalizer in array_field(meta, "finalizers", "metadata.finalizers", &mut errs) {
        let text = finalizer.as_str().unwrap_or("");
        for msg in names::is_qualified_name(text) {
            errs.push(FieldError::invalid("metadata.finalizers", text, &msg));
        }
    }
    for owner in array_field(
        meta,
        "ownerReferences",
        "metadata.ownerReferences",
        &mut errs,
    ) {
        for (key, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            let value = owner.get(key).and_then(Value::as_str).unwrap_or("");
            if value.is_empty() {
                errs.push(FieldError::invalid(
                    &format!("metadata.ownerReferences.{key}"),
                    value,
                    &format!("{what} must not be empty"),
                ));
            }
        }
    }
    errs
}

/// Label keys must be qualified names and values valid label values.
pub fn validate_labels(labels: &Map<String, Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        for msg in names::is_qualified_name(key) {
            errs.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        match value.as_str() {
            Some(text) => {
                for msg in names::is_valid_label_value(text) {
                    errs.push(FieldError::invalid(path, text, &msg));
                }
            }
            None => errs.push(FieldError::type_invalid(
                &format!("{path}[{key}]"),
                value.clone(),
                "must be a string",
            )),
        }
    }
    errs
}

pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Annotation keys are qualified names (case-insensitively); the total size is capped.
pub fn validate_annotations(annotations: &Map<String, Value>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in names::is_qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, key.as_str(), &msg));
        }
        total += key.len();
        match value.as_str() {
            Some(text) => total += text.len(),
            None => errs.push(FieldError::type_invalid(
                &format!("{path}[{key}]"),
                value.clone(),
                "must be a string",
            )),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// Upstream's `ValidateObjectMetaUpdate`: identity fields cannot change.
pub fn validate_object_meta_update(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["name", "namespace", "uid", "creationTimestamp"] {
        let new_value = obj.get("metadata").and_then(|m| m.get(key));
        let old_value = old.get("metadata").and_then(|m| m.get(key));
        fn set(v: Option<&Value>) -> Option<&Value> {
            v.filter(|v| !v.is_null() && v.as_str() != Some(""))
        }
        // Unset on the new object means "keep": the server fills these from the stored object.
        if key != "name" && key != "namespace" && set(new_value).is_none() {
            continue;
        }
        if set(new_value) != set(old_value) {
            errs.push(FieldError::immutable(
                &format!("metadata.{key}"),
                new_value.cloned().unwrap_or(Value::String(String::new())),
            ));
        }
    }
    errs
}

// ---- shared accessors ----------------------------------------------------------------------

/// The object being validated and the old version on update.
pub(crate) struct Ctx<'a> {
    pub root: &'a Map<String, Value>,
    pub value: &'a Value,
    pub old: Option<&'a Value>,
}

pub(crate) fn str_field<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be a string",
            ));
            None
        }
    }
}

pub(crate) fn int_field(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<i64> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be an integer",
            ));
            None
        }
    }
}

pub(crate) fn bool_field(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<bool> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be a boolean",
            ));
            None
        }
    }
}

pub(crate) fn map_field<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be an object",
            ));
            None
        }
    }
}

/// The array at `key` (empty when absent); non-array values are reported.
pub(crate) fn array_field<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> &'a [Value] {
    match map.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(other) => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be an array",
            ));
            &[]
        }
    }
}

/// Items of an array as objects with their paths; non-object items are reported.
pub(crate) fn object_items<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Vec<(String, &'a Map<String, Value>)> {
    let mut out = Vec::new();
    for (i, item) in array_field(map, key, path, errs).iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match item.as_object() {
            Some(obj) => out.push((item_path, obj)),
            None => errs.push(FieldError::type_invalid(
                &item_path,
                item.clone(),
                "must be an object",
            )),
        }
    }
    out
}

pub(crate) fn non_negative(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(value) = int_field(map, key, path, errs)
        && value < 0
    {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

pub(crate) fn enum_field(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    supported: &[&str],
    required: bool,
    errs: &mut Vec<FieldError>,
) {
    match str_field(map, key, path, errs) {
        None | Some("") if required => errs.push(FieldError::required(path, "")),
        None | Some("") => {}
        Some(value) if !supported.contains(&value) => {
            errs.push(FieldError::not_supported(path, value, supported));
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests;
