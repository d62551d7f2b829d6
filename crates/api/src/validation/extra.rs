//! Smaller kinds: HorizontalPodAutoscaler, PodDisruptionBudget, Ingress, NetworkPolicy,
//! PriorityClass, StorageClass and PersistentVolume.

use super::quantity::quantity_value;
use super::{
    Ctx, FieldError, array_field, enum_field, int_field, map_field, object_items, str_field,
};
use serde_json::{Map, Value};

pub(crate) fn validate_hpa(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    let target = map_field(spec, "scaleTargetRef", "spec.scaleTargetRef", errs).unwrap_or(&empty);
    for key in ["kind", "name"] {
        let path = format!("spec.scaleTargetRef.{key}");
        if str_field(target, key, &path, errs).unwrap_or("").is_empty() {
            errs.push(FieldError::required(&path, ""));
        }
    }
    let min = int_field(spec, "minReplicas", "spec.minReplicas", errs);
    if let Some(min) = min
        && min < 1
    {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_field(spec, "maxReplicas", "spec.maxReplicas", errs).unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    } else if let Some(min) = min
        && max < min
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    for (path, metric) in object_items(spec, "metrics", "spec.metrics", errs) {
        enum_field(
            metric,
            "type",
            &format!("{path}.type"),
            &[
                "ContainerResource",
                "External",
                "Object",
                "Pods",
                "Resource",
            ],
            true,
            errs,
        );
    }
}

pub(crate) fn validate_pdb(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    let set = |key: &str| spec.get(key).is_some_and(|v| !v.is_null());
    if set("minAvailable") && set("maxUnavailable") {
        errs.push(FieldError::invalid(
            "spec",
            Value::Object(spec.clone()),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for key in ["minAvailable", "maxUnavailable"] {
        let path = format!("spec.{key}");
        match spec.get(key) {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v < 0) => {
                errs.push(FieldError::invalid(
                    &path,
                    Value::Number(n.clone()),
                    "must be greater than or equal to 0",
                ));
            }
            Some(Value::String(s)) => {
                let percent = s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok());
                match percent {
                    None => errs.push(FieldError::invalid(
                        &path,
                        s.as_str(),
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    )),
                    Some(p) if p > 100 => {
                        errs.push(FieldError::invalid(&path, s.as_str(), "must not be greater than 100%"))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
}

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

pub(crate) fn validate_ingress(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    let rules = object_items(spec, "rules", "spec.rules", errs);
    let has_default = spec.get("defaultBackend").is_some_and(Value::is_object);
    if rules.is_empty() && !has_default {
        errs.push(FieldError::invalid(
            "spec",
            Value::Object(spec.clone()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (rule_path, rule) in rules {
        if let Some(host) = str_field(rule, "host", &format!("{rule_path}.host"), errs)
            && !host.is_empty()
        {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            for msg in super::names::is_dns1123_subdomain(bare) {
                errs.push(FieldError::invalid(
                    &format!("{rule_path}.host"),
                    host,
                    &msg,
                ));
            }
        }
        let Some(http) = map_field(rule, "http", &format!("{rule_path}.http"), errs) else {
            continue;
        };
        let paths_path = format!("{rule_path}.http.paths");
        let paths = object_items(http, "paths", &paths_path, errs);
        if paths.is_empty() {
            errs.push(FieldError::required(&paths_path, ""));
        }
        for (path_path, entry) in paths {
            let type_path = format!("{path_path}.pathType");
            let path_type = str_field(entry, "pathType", &type_path, errs).unwrap_or("");
            if path_type.is_empty() {
                errs.push(FieldError::required(
                    &type_path,
                    "pathType must be specified",
                ));
            } else if !PATH_TYPES.contains(&path_type) {
                errs.push(FieldError::not_supported(&type_path, path_type, PATH_TYPES));
            }
            let value_path = format!("{path_path}.path");
            let path = str_field(entry, "path", &value_path, errs).unwrap_or("");
            if matches!(path_type, "Exact" | "Prefix") && !path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &value_path,
                    path,
                    "must be an absolute path",
                ));
            }
            match map_field(entry, "backend", &format!("{path_path}.backend"), errs) {
                None => errs.push(FieldError::required(&format!("{path_path}.backend"), "")),
                Some(backend) => {
                    let has_service = backend.get("service").is_some_and(Value::is_object);
                    let has_resource = backend.get("resource").is_some_and(Value::is_object);
                    if has_service == has_resource {
                        errs.push(FieldError::invalid(
                            &format!("{path_path}.backend"),
                            Value::Object(backend.clone()),
                            "cannot set both resource and service backends",
                        ));
                    }
                }
            }
        }
    }
}

pub(crate) fn validate_network_policy(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    let types = array_field(spec, "policyTypes", "spec.policyTypes", errs);
    for (i, policy_type) in types.iter().enumerate() {
        let text = policy_type.as_str().unwrap_or("");
        if !["Ingress", "Egress"].contains(&text) {
            errs.push(FieldError::not_supported(
                &format!("spec.policyTypes[{i}]"),
                text,
                &["Ingress", "Egress"],
            ));
        }
    }
    if types.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.policyTypes",
            Value::Array(types.to_vec()),
            "may not specify more than two policyTypes",
        ));
    }
}

const MAX_USER_PRIORITY: i64 = 1_000_000_000;

pub(crate) fn validate_priority_class(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let name = ctx
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int_field(ctx.root, "value", "value", errs).unwrap_or(0);
    if !name.starts_with("system-") && value > MAX_USER_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            "maximum allowed value of a user defined priority is 1000000000",
        ));
    }
    enum_field(
        ctx.root,
        "preemptionPolicy",
        "preemptionPolicy",
        &["Never", "PreemptLowerPriority"],
        false,
        errs,
    );
    if let Some(old) = ctx.old {
        if old.get("value") != ctx.root.get("value") {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if old.get("preemptionPolicy") != ctx.root.get("preemptionPolicy") {
            errs.push(FieldError::immutable(
                "preemptionPolicy",
                ctx.root
                    .get("preemptionPolicy")
                    .cloned()
                    .unwrap_or(Value::Null),
            ));
        }
    }
}

pub(crate) fn validate_storage_class(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    match str_field(ctx.root, "provisioner", "provisioner", errs) {
        None | Some("") => errs.push(FieldError::required("provisioner", "")),
        Some(provisioner) => {
            for msg in super::names::is_qualified_name(&provisioner.to_lowercase()) {
                errs.push(FieldError::invalid("provisioner", provisioner, &msg));
            }
        }
    }
    enum_field(
        ctx.root,
        "reclaimPolicy",
        "reclaimPolicy",
        &["Delete", "Retain"],
        false,
        errs,
    );
    enum_field(
        ctx.root,
        "volumeBindingMode",
        "volumeBindingMode",
        &["Immediate", "WaitForFirstConsumer"],
        false,
        errs,
    );
    if let Some(old) = ctx.old {
        if old.get("parameters") != ctx.root.get("parameters") {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if old.get("provisioner") != ctx.root.get("provisioner") {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if old.get("reclaimPolicy") != ctx.root.get("reclaimPolicy") {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
    }
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

pub(crate) fn validate_pv(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let spec = map_field(ctx.root, "spec", "spec", errs).unwrap_or(&empty);
    if array_field(spec, "accessModes", "spec.accessModes", errs).is_empty() {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    match spec.get("capacity").and_then(|c| c.get("storage")) {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.capacity", "")),
        Some(quantity) if quantity_value(quantity).is_none_or(|v| v <= 0.0) => {
            errs.push(FieldError::invalid(
                "spec.capacity[storage]",
                quantity.clone(),
                "must be greater than zero",
            ));
        }
        Some(_) => {}
    }
    let sources = PV_SOURCES
        .iter()
        .filter(|s| spec.get(**s).is_some_and(|v| !v.is_null()))
        .count();
    if sources == 0 {
        errs.push(FieldError::required("spec", "must specify a volume type"));
    } else if sources > 1 {
        errs.push(FieldError::forbidden(
            "spec",
            "may not specify more than 1 volume type",
        ));
    }
    enum_field(
        spec,
        "persistentVolumeReclaimPolicy",
        "spec.persistentVolumeReclaimPolicy",
        &["Delete", "Recycle", "Retain"],
        false,
        errs,
    );
}
