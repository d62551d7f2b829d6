//! Service, ConfigMap, Secret, Namespace, Node, Event, PersistentVolumeClaim, Lease, RBAC and
//! CustomResourceDefinition validation.

use super::quantity::quantity_value;
use super::{
    Ctx, FieldError, enum_field, int_field, map_field, names, non_negative, object_items, str_field,
};
use serde_json::{Map, Value};
use std::collections::HashSet;

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

pub(crate) fn validate_service(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    let service_type = str_field(spec, "type", "spec.type", errs).unwrap_or("");
    enum_field(spec, "type", "spec.type", SERVICE_TYPES, true, errs);
    enum_field(
        spec,
        "sessionAffinity",
        "spec.sessionAffinity",
        &["ClientIP", "None"],
        true,
        errs,
    );
    let cluster_ip = str_field(spec, "clusterIP", "spec.clusterIP", errs).unwrap_or("");
    let headless = cluster_ip == "None";
    if service_type == "ExternalName" {
        match str_field(spec, "externalName", "spec.externalName", errs) {
            None | Some("") => errs.push(FieldError::required("spec.externalName", "")),
            Some(external) => {
                for msg in names::is_dns1123_subdomain(external.trim_end_matches('.')) {
                    errs.push(FieldError::invalid("spec.externalName", external, &msg));
                }
            }
        }
    } else if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::IpAddr>().is_err()
    {
        errs.push(FieldError::invalid(
            "spec.clusterIP",
            cluster_ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    let ports = object_items(spec, "ports", "spec.ports", errs);
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let multiple = ports.len() > 1;
    let mut port_names = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (path, port) in &ports {
        let name_path = format!("{path}.name");
        let name = str_field(port, "name", &name_path, errs).unwrap_or("");
        if name.is_empty() {
            if multiple {
                errs.push(FieldError::required(&name_path, ""));
            }
        } else {
            for msg in names::is_dns1123_label(name) {
                errs.push(FieldError::invalid(&name_path, name, &msg));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&name_path, name));
            }
        }
        let port_path = format!("{path}.port");
        let number = int_field(port, "port", &port_path, errs);
        match number {
            Some(n) => {
                for msg in names::is_valid_port_num(n) {
                    errs.push(FieldError::invalid(&port_path, n, &msg));
                }
            }
            None if port.get("port").is_none_or(Value::is_null) => {
                errs.push(FieldError::invalid(
                    &port_path,
                    0,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            None => {}
        }
        enum_field(
            port,
            "protocol",
            &format!("{path}.protocol"),
            PROTOCOLS,
            true,
            errs,
        );
        let protocol = port.get("protocol").and_then(Value::as_str).unwrap_or("");
        if let Some(n) = number
            && !port_protocols.insert((n, protocol.to_string()))
        {
            errs.push(FieldError::duplicate(
                path,
                Value::String(format!("{n}/{protocol}")),
            ));
        }
        let target_path = format!("{path}.targetPort");
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(-1);
                for msg in names::is_valid_port_num(n) {
                    errs.push(FieldError::invalid(&target_path, n, &msg));
                }
            }
            Some(Value::String(s)) => {
                for msg in names::is_valid_port_name(s) {
                    errs.push(FieldError::invalid(&target_path, s.as_str(), &msg));
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => errs.push(FieldError::type_invalid(
                &target_path,
                other.clone(),
                "must be an integer or a name",
            )),
        }
        let node_port_path = format!("{path}.nodePort");
        if let Some(node_port) = int_field(port, "nodePort", &node_port_path, errs)
            && node_port != 0
        {
            if matches!(service_type, "NodePort" | "LoadBalancer") {
                for msg in names::is_valid_port_num(node_port) {
                    errs.push(FieldError::invalid(&node_port_path, node_port, &msg));
                }
            } else {
                errs.push(FieldError::forbidden(
                    &node_port_path,
                    &format!("may not be used when `type` is '{service_type}'"),
                ));
            }
        }
    }
    if let Some(selector) = map_field(spec, "selector", "spec.selector", errs) {
        errs.extend(super::validate_labels(selector, "spec.selector"));
    }
    if let Some(old_ip) = ctx
        .old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        && !old_ip.is_empty()
        && service_type != "ExternalName"
        && old_ip != cluster_ip
    {
        errs.push(FieldError::immutable("spec.clusterIP", cluster_ip));
    }
}

fn validate_data_keys(root: &Map<String, Value>, errs: &mut Vec<FieldError>) -> usize {
    let mut total = 0;
    let mut seen = HashSet::new();
    for key in ["data", "stringData", "binaryData"] {
        let Some(data) = map_field(root, key, key, errs) else {
            continue;
        };
        for (entry, value) in data {
            let entry_path = format!("{key}[{entry}]");
            for msg in names::is_config_map_key(entry) {
                errs.push(FieldError::invalid(&entry_path, entry.as_str(), &msg));
            }
            if key == "binaryData" && !seen.insert(entry.clone()) {
                errs.push(FieldError::invalid(
                    &entry_path,
                    entry.as_str(),
                    "duplicate of key present in data",
                ));
            } else {
                seen.insert(entry.clone());
            }
            match value {
                Value::String(s) => total += s.len(),
                Value::Null => {}
                other => errs.push(FieldError::type_invalid(
                    &entry_path,
                    other.clone(),
                    "must be a string",
                )),
            }
        }
    }
    total
}

fn immutable_data(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(old) = ctx.old else {
        return;
    };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if ctx.root.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for key in ["data", "binaryData"] {
        let empty = Value::Object(Map::new());
        let new_value = ctx.root.get(key).filter(|v| !v.is_null()).unwrap_or(&empty);
        let old_value = old.get(key).filter(|v| !v.is_null()).unwrap_or(&empty);
        if new_value != old_value {
            errs.push(FieldError::forbidden(
                key,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

pub(crate) fn validate_config_map(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let total = validate_data_keys(ctx.root, errs);
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    immutable_data(ctx, errs);
}

pub(crate) fn validate_secret(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let total = validate_data_keys(ctx.root, errs);
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has_key = |key: &str| {
        ["data", "stringData"]
            .iter()
            .any(|d| ctx.root.get(*d).and_then(|m| m.get(key)).is_some())
    };
    let secret_type = ctx.root.get("type").and_then(Value::as_str).unwrap_or("");
    let required_keys: &[&str] = match secret_type {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required_keys {
        if !has_key(key) {
            errs.push(FieldError::required(&format!("data[{key}]"), ""));
        }
    }
    if secret_type == "kubernetes.io/service-account-token"
        && ctx
            .value
            .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errs.push(FieldError::required(
            "metadata.annotations[kubernetes.io/service-account.name]",
            "",
        ));
    }
    if let Some(old) = ctx.old {
        let old_type = old.get("type").and_then(Value::as_str).unwrap_or("");
        if old_type != secret_type {
            errs.push(FieldError::immutable("type", secret_type));
        }
    }
    immutable_data(ctx, errs);
}

pub(crate) fn validate_namespace(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    for finalizer in super::array_field(spec, "finalizers", "spec.finalizers", errs) {
        let text = finalizer.as_str().unwrap_or("");
        if text.contains('/') {
            for msg in names::is_qualified_name(text) {
                errs.push(FieldError::invalid("spec.finalizers", text, &msg));
            }
        } else if text != "kubernetes" {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                text,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

pub(crate) fn validate_node(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    for (path, taint) in object_items(spec, "taints", "spec.taints", errs) {
        let key_path = format!("{path}.key");
        let key = str_field(taint, "key", &key_path, errs).unwrap_or("");
        if key.is_empty() {
            errs.push(FieldError::required(&key_path, ""));
        } else {
            for msg in names::is_qualified_name(key) {
                errs.push(FieldError::invalid(&key_path, key, &msg));
            }
        }
        enum_field(
            taint,
            "effect",
            &format!("{path}.effect"),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            true,
            errs,
        );
    }
}

pub(crate) fn validate_event(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let namespace = ctx
        .value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(involved) = map_field(ctx.root, "involvedObject", "involvedObject", errs) {
        let involved_ns =
            str_field(involved, "namespace", "involvedObject.namespace", errs).unwrap_or("");
        if !involved_ns.is_empty() && involved_ns != namespace {
            errs.push(FieldError::invalid(
                "involvedObject.namespace",
                involved_ns,
                "does not match event.namespace",
            ));
        }
    }
    if let Some(event_type) = str_field(ctx.root, "type", "type", errs)
        && !event_type.is_empty()
        && !["Normal", "Warning"].contains(&event_type)
    {
        errs.push(FieldError::not_supported(
            "type",
            event_type,
            &["Normal", "Warning"],
        ));
    }
}

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub(crate) fn validate_pvc(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    let modes = super::array_field(spec, "accessModes", "spec.accessModes", errs);
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        let text = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&text) {
            errs.push(FieldError::not_supported(
                "spec.accessModes",
                text,
                ACCESS_MODES,
            ));
        }
    }
    let storage = spec
        .get("resources")
        .and_then(|r| r.get("requests"))
        .and_then(|r| r.get("storage"));
    match storage {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(quantity) => match quantity_value(quantity) {
            Some(v) if v > 0.0 => {}
            _ => errs.push(FieldError::invalid(
                "spec.resources[storage]",
                quantity.clone(),
                "must be greater than zero",
            )),
        },
    }
    enum_field(
        spec,
        "volumeMode",
        "spec.volumeMode",
        &["Block", "Filesystem"],
        false,
        errs,
    );
    if let Some(old_spec) = ctx
        .old
        .and_then(|o| o.get("spec"))
        .and_then(Value::as_object)
    {
        let strip = |m: &Map<String, Value>| {
            let mut m = m.clone();
            if let Some(Value::Object(resources)) = m.get_mut("resources") {
                resources.remove("requests");
            }
            m.remove("volumeAttributesClassName");
            // volumeName is set when binding.
            m.remove("volumeName");
            m
        };
        if strip(spec) != strip(old_spec) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
    }
}

pub(crate) fn validate_lease(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    if let Some(duration) = int_field(
        spec,
        "leaseDurationSeconds",
        "spec.leaseDurationSeconds",
        errs,
    ) && duration <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            duration,
            "must be greater than 0",
        ));
    }
    non_negative(spec, "leaseTransitions", "spec.leaseTransitions", errs);
    str_field(spec, "holderIdentity", "spec.holderIdentity", errs);
}

pub(crate) fn validate_rbac(kind: &str, ctx: &Ctx, errs: &mut Vec<FieldError>) {
    match kind {
        "Role" | "ClusterRole" => {
            for (path, rule) in object_items(ctx.root, "rules", "rules", errs) {
                let verbs = super::array_field(rule, "verbs", &format!("{path}.verbs"), errs);
                if verbs.is_empty() {
                    errs.push(FieldError::required(
                        &format!("{path}.verbs"),
                        "verbs must contain at least one value",
                    ));
                }
                let has_urls = rule
                    .get("nonResourceURLs")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                let has_resources = rule
                    .get("resources")
                    .and_then(Value::as_array)
                    .is_some_and(|r| !r.is_empty());
                if has_urls && kind == "Role" {
                    errs.push(FieldError::invalid(
                        &format!("{path}.nonResourceURLs"),
                        rule["nonResourceURLs"].clone(),
                        "namespaced rules cannot apply to non-resource URLs",
                    ));
                }
                if has_urls && has_resources {
                    errs.push(FieldError::invalid(
                        &format!("{path}.nonResourceURLs"),
                        rule["nonResourceURLs"].clone(),
                        "rules cannot apply to both regular resources and non-resource URLs",
                    ));
                }
                if !has_urls
                    && rule
                        .get("apiGroups")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty)
                {
                    errs.push(FieldError::required(
                        &format!("{path}.apiGroups"),
                        "resource rules must supply at least one api group",
                    ));
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kinds: &[&str] = if kind == "RoleBinding" {
                &["Role", "ClusterRole"]
            } else {
                &["ClusterRole"]
            };
            match map_field(ctx.root, "roleRef", "roleRef", errs) {
                None => errs.push(FieldError::required("roleRef.name", "")),
                Some(role_ref) => {
                    let api_group = role_ref
                        .get("apiGroup")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if api_group != "rbac.authorization.k8s.io" {
                        errs.push(FieldError::not_supported(
                            "roleRef.apiGroup",
                            api_group,
                            &["rbac.authorization.k8s.io"],
                        ));
                    }
                    let ref_kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
                    if !kinds.contains(&ref_kind) {
                        errs.push(FieldError::not_supported("roleRef.kind", ref_kind, kinds));
                    }
                    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
                    if name.is_empty() {
                        errs.push(FieldError::required("roleRef.name", ""));
                    } else {
                        for msg in names::is_path_segment_name(name) {
                            errs.push(FieldError::invalid("roleRef.name", name, &msg));
                        }
                    }
                }
            }
            for (path, subject) in object_items(ctx.root, "subjects", "subjects", errs) {
                let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    errs.push(FieldError::required(&format!("{path}.name"), ""));
                }
                let subject_kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
                match subject_kind {
                    "ServiceAccount" => {
                        if !name.is_empty() {
                            for msg in names::is_dns1123_subdomain(name) {
                                errs.push(FieldError::invalid(&format!("{path}.name"), name, &msg));
                            }
                        }
                        if kind == "ClusterRoleBinding"
                            && subject
                                .get("namespace")
                                .and_then(Value::as_str)
                                .is_none_or(str::is_empty)
                        {
                            errs.push(FieldError::required(&format!("{path}.namespace"), ""));
                        }
                    }
                    "User" | "Group" => {
                        let group = subject
                            .get("apiGroup")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        if group != "rbac.authorization.k8s.io" {
                            errs.push(FieldError::not_supported(
                                &format!("{path}.apiGroup"),
                                group,
                                &["rbac.authorization.k8s.io"],
                            ));
                        }
                    }
                    other => errs.push(FieldError::not_supported(
                        &format!("{path}.kind"),
                        other,
                        &["ServiceAccount", "User", "Group"],
                    )),
                }
            }
            if let Some(old) = ctx.old
                && old.get("roleRef") != ctx.root.get("roleRef")
            {
                errs.push(FieldError::invalid(
                    "roleRef",
                    ctx.root.get("roleRef").cloned().unwrap_or(Value::Null),
                    "cannot change roleRef",
                ));
            }
        }
        _ => {}
    }
}

pub(crate) fn validate_crd(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    let group = str_field(spec, "group", "spec.group", errs).unwrap_or("");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        for msg in names::is_dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", group, &msg));
        }
        if group.split('.').count() < 2 {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    enum_field(
        spec,
        "scope",
        "spec.scope",
        &["Cluster", "Namespaced"],
        true,
        errs,
    );
    let names_obj = map_field(spec, "names", "spec.names", errs).unwrap_or(&empty);
    let plural = str_field(names_obj, "plural", "spec.names.plural", errs).unwrap_or("");
    let name = ctx
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    for (key, required) in [
        ("plural", true),
        ("singular", false),
        ("kind", true),
        ("listKind", true),
    ] {
        let path = format!("spec.names.{key}");
        let value = str_field(names_obj, key, &path, errs).unwrap_or("");
        if value.is_empty() {
            if required {
                errs.push(FieldError::required(&path, ""));
            }
            continue;
        }
        let messages = if key == "kind" || key == "listKind" {
            names::is_dns1035_label(&value.to_lowercase())
        } else {
            names::is_dns1035_label(value)
        };
        for msg in messages {
            errs.push(FieldError::invalid(&path, value, &msg));
        }
    }
    let versions = object_items(spec, "versions", "spec.versions", errs);
    if versions.is_empty() {
        errs.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let mut storage = 0;
    let mut seen = HashSet::new();
    for (path, version) in &versions {
        let name_path = format!("{path}.name");
        let version_name = str_field(version, "name", &name_path, errs).unwrap_or("");
        if version_name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            for msg in names::is_dns1035_label(version_name) {
                errs.push(FieldError::invalid(&name_path, version_name, &msg));
            }
            if !seen.insert(version_name.to_string()) {
                errs.push(FieldError::invalid(
                    "spec.versions",
                    Value::Array(Vec::new()),
                    "must contain unique version names",
                ));
            }
        }
        if version.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
    }
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            Value::Array(
                versions
                    .iter()
                    .map(|(_, v)| Value::Object((*v).clone()))
                    .collect(),
            ),
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(old_spec) = ctx.old.and_then(|o| o.get("spec")) {
        for (key, path) in [("group", "spec.group"), ("scope", "spec.scope")] {
            if old_spec.get(key) != spec.get(key) && key == "group" {
                errs.push(FieldError::immutable(
                    path,
                    spec.get(key).cloned().unwrap_or(Value::Null),
                ));
            }
        }
        if old_spec.pointer("/names/plural") != spec.get("names").and_then(|n| n.get("plural")) {
            errs.push(FieldError::immutable("spec.names.plural", plural));
        }
    }
}
