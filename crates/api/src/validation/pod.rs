//! Pod and pod template validation (`ValidatePodSpec` and friends).

use super::quantity::{QUANTITY_FORMAT_ERROR, quantity_value};
use super::{
    Ctx, FieldError, array_field, enum_field, int_field, map_field, names, non_negative,
    object_items, str_field, validate_annotations, validate_labels,
};
use serde_json::{Map, Value};
use std::collections::HashSet;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

pub(crate) fn validate_pod(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        errs.push(FieldError::required("spec.containers", ""));
        return;
    };
    validate_pod_spec(spec, "spec", errs);
    if let Some(old_spec) = ctx.old.and_then(|o| o.get("spec")) {
        validate_pod_spec_update(spec, old_spec, errs);
    }
}

pub(crate) fn validate_pod_template_object(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    match map_field(ctx.root, "template", "template", errs) {
        Some(template) => validate_pod_template(template, "template", errs),
        None => errs.push(FieldError::required("template", "")),
    }
}

/// Validates a `PodTemplateSpec` at `path` (`spec.template`).
pub(crate) fn validate_pod_template(
    template: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(meta) = map_field(template, "metadata", &format!("{path}.metadata"), errs) {
        let labels_path = format!("{path}.metadata.labels");
        if let Some(labels) = map_field(meta, "labels", &labels_path, errs) {
            errs.extend(validate_labels(labels, &labels_path));
        }
        let annotations_path = format!("{path}.metadata.annotations");
        if let Some(annotations) = map_field(meta, "annotations", &annotations_path, errs) {
            errs.extend(validate_annotations(annotations, &annotations_path));
        }
    }
    let spec_path = format!("{path}.spec");
    match map_field(template, "spec", &spec_path, errs) {
        Some(spec) => validate_pod_spec(spec, &spec_path, errs),
        None => errs.push(FieldError::required(&format!("{spec_path}.containers"), "")),
    }
}

pub(crate) fn validate_pod_spec(spec: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(spec, path, errs);
    let containers_path = format!("{path}.containers");
    let containers = object_items(spec, "containers", &containers_path, errs);
    if containers.is_empty() && !errs.iter().any(|e| e.field == containers_path) {
        errs.push(FieldError::required(&containers_path, ""));
    }
    let mut container_names = HashSet::new();
    let init_path = format!("{path}.initContainers");
    for (item_path, container) in object_items(spec, "initContainers", &init_path, errs) {
        validate_container(container, &item_path, &volumes, &mut container_names, errs);
    }
    for (item_path, container) in containers {
        validate_container(container, &item_path, &volumes, &mut container_names, errs);
    }
    enum_field(
        spec,
        "restartPolicy",
        &format!("{path}.restartPolicy"),
        RESTART_POLICIES,
        true,
        errs,
    );
    enum_field(
        spec,
        "dnsPolicy",
        &format!("{path}.dnsPolicy"),
        DNS_POLICIES,
        true,
        errs,
    );
    if let Some(deadline) = int_field(
        spec,
        "activeDeadlineSeconds",
        &format!("{path}.activeDeadlineSeconds"),
        errs,
    ) && deadline <= 0
    {
        errs.push(FieldError::invalid(
            &format!("{path}.activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    non_negative(
        spec,
        "terminationGracePeriodSeconds",
        &format!("{path}.terminationGracePeriodSeconds"),
        errs,
    );
    if let Some(sa) = str_field(
        spec,
        "serviceAccountName",
        &format!("{path}.serviceAccountName"),
        errs,
    ) && !sa.is_empty()
    {
        for msg in names::is_dns1123_subdomain(sa) {
            errs.push(FieldError::invalid(
                &format!("{path}.serviceAccountName"),
                sa,
                &msg,
            ));
        }
    }
    if let Some(node) = str_field(spec, "nodeName", &format!("{path}.nodeName"), errs)
        && !node.is_empty()
    {
        for msg in names::is_dns1123_subdomain(node) {
            errs.push(FieldError::invalid(&format!("{path}.nodeName"), node, &msg));
        }
    }
    let tolerations_path = format!("{path}.tolerations");
    for (item_path, toleration) in object_items(spec, "tolerations", &tolerations_path, errs) {
        enum_field(
            toleration,
            "operator",
            &format!("{item_path}.operator"),
            &["Equal", "Exists"],
            false,
            errs,
        );
        enum_field(
            toleration,
            "effect",
            &format!("{item_path}.effect"),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            false,
            errs,
        );
    }
}

/// Validates volumes and returns their names for mount checks.
fn validate_volumes(
    spec: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> HashSet<String> {
    let mut seen = HashSet::new();
    let volumes_path = format!("{path}.volumes");
    for (item_path, volume) in object_items(spec, "volumes", &volumes_path, errs) {
        let name_path = format!("{item_path}.name");
        let name = str_field(volume, "name", &name_path, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            for msg in names::is_dns1123_label(name) {
                errs.push(FieldError::invalid(&name_path, name, &msg));
            }
            if !seen.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&name_path, name));
            }
        }
        for source in ["secret", "configMap"] {
            if let Some(source_obj) =
                map_field(volume, source, &format!("{item_path}.{source}"), errs)
            {
                for (entry_path, entry) in object_items(
                    source_obj,
                    "items",
                    &format!("{item_path}.{source}.items"),
                    errs,
                ) {
                    if str_field(entry, "key", &format!("{entry_path}.key"), errs)
                        .unwrap_or("")
                        .is_empty()
                    {
                        errs.push(FieldError::required(&format!("{entry_path}.key"), ""));
                    }
                }
                if let Some(mode) = int_field(
                    source_obj,
                    "defaultMode",
                    &format!("{item_path}.{source}.defaultMode"),
                    errs,
                ) && !(0..=0o777).contains(&mode)
                {
                    errs.push(FieldError::invalid(
                        &format!("{item_path}.{source}.defaultMode"),
                        mode,
                        "must be a number between 0 and 0777 (octal), both inclusive",
                    ));
                }
            }
        }
        if let Some(pvc) = map_field(
            volume,
            "persistentVolumeClaim",
            &format!("{item_path}.persistentVolumeClaim"),
            errs,
        ) {
            let claim_path = format!("{item_path}.persistentVolumeClaim.claimName");
            if str_field(pvc, "claimName", &claim_path, errs)
                .unwrap_or("")
                .is_empty()
            {
                errs.push(FieldError::required(&claim_path, ""));
            }
        }
        if let Some(host_path) =
            map_field(volume, "hostPath", &format!("{item_path}.hostPath"), errs)
        {
            let hp_path = format!("{item_path}.hostPath.path");
            if str_field(host_path, "path", &hp_path, errs)
                .unwrap_or("")
                .is_empty()
            {
                errs.push(FieldError::required(&hp_path, ""));
            }
        }
    }
    seen
}

fn validate_container(
    container: &Map<String, Value>,
    path: &str,
    volumes: &HashSet<String>,
    container_names: &mut HashSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name_path = format!("{path}.name");
    let name = str_field(container, "name", &name_path, errs).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        for msg in names::is_dns1123_label(name) {
            errs.push(FieldError::invalid(&name_path, name, &msg));
        }
        if !container_names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(&name_path, name));
        }
    }
    let image_path = format!("{path}.image");
    let image = str_field(container, "image", &image_path, errs).unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(&image_path, ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            &image_path,
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    enum_field(
        container,
        "imagePullPolicy",
        &format!("{path}.imagePullPolicy"),
        PULL_POLICIES,
        true,
        errs,
    );
    enum_field(
        container,
        "terminationMessagePolicy",
        &format!("{path}.terminationMessagePolicy"),
        TERMINATION_MESSAGE_POLICIES,
        true,
        errs,
    );
    validate_container_ports(container, path, errs);
    validate_env(container, path, errs);
    validate_resources(container, path, errs);
    let mounts_path = format!("{path}.volumeMounts");
    let mut mount_points = HashSet::new();
    for (item_path, mount) in object_items(container, "volumeMounts", &mounts_path, errs) {
        let mount_name_path = format!("{item_path}.name");
        let mount_name = str_field(mount, "name", &mount_name_path, errs).unwrap_or("");
        if mount_name.is_empty() {
            errs.push(FieldError::required(&mount_name_path, ""));
        } else if !volumes.contains(mount_name) {
            errs.push(FieldError::not_found(&mount_name_path, mount_name));
        }
        let mount_path_path = format!("{item_path}.mountPath");
        let mount_path = str_field(mount, "mountPath", &mount_path_path, errs).unwrap_or("");
        if mount_path.is_empty() {
            errs.push(FieldError::required(&mount_path_path, ""));
        } else if !mount_points.insert(mount_path.to_string()) {
            errs.push(FieldError::invalid(
                &mount_path_path,
                mount_path,
                "must be unique",
            ));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let probe_path = format!("{path}.{probe}");
        if let Some(probe_obj) = map_field(container, probe, &probe_path, errs) {
            for key in [
                "initialDelaySeconds",
                "timeoutSeconds",
                "periodSeconds",
                "successThreshold",
                "failureThreshold",
            ] {
                non_negative(probe_obj, key, &format!("{probe_path}.{key}"), errs);
            }
            if probe != "readinessProbe"
                && let Some(threshold) = probe_obj.get("successThreshold").and_then(Value::as_i64)
                && threshold != 1
            {
                errs.push(FieldError::invalid(
                    &format!("{probe_path}.successThreshold"),
                    threshold,
                    "must be 1",
                ));
            }
        }
    }
}

fn validate_container_ports(
    container: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let ports_path = format!("{path}.ports");
    let mut port_names = HashSet::new();
    for (item_path, port) in object_items(container, "ports", &ports_path, errs) {
        let name_path = format!("{item_path}.name");
        if let Some(name) = str_field(port, "name", &name_path, errs)
            && !name.is_empty()
        {
            for msg in names::is_valid_port_name(name) {
                errs.push(FieldError::invalid(&name_path, name, &msg));
            }
            if !port_names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(&name_path, name));
            }
        }
        let container_port_path = format!("{item_path}.containerPort");
        match int_field(port, "containerPort", &container_port_path, errs) {
            None if !port.contains_key("containerPort") || port["containerPort"].is_null() => {
                errs.push(FieldError::required(&container_port_path, ""));
            }
            Some(number) => {
                for msg in names::is_valid_port_num(number) {
                    errs.push(FieldError::invalid(&container_port_path, number, &msg));
                }
            }
            None => {}
        }
        let host_port_path = format!("{item_path}.hostPort");
        if let Some(number) = int_field(port, "hostPort", &host_port_path, errs)
            && number != 0
        {
            for msg in names::is_valid_port_num(number) {
                errs.push(FieldError::invalid(&host_port_path, number, &msg));
            }
        }
        enum_field(
            port,
            "protocol",
            &format!("{item_path}.protocol"),
            PROTOCOLS,
            true,
            errs,
        );
    }
}

fn validate_env(container: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let env_path = format!("{path}.env");
    for (item_path, env) in object_items(container, "env", &env_path, errs) {
        let name_path = format!("{item_path}.name");
        let name = str_field(env, "name", &name_path, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else {
            for msg in names::is_env_var_name(name) {
                errs.push(FieldError::invalid(&name_path, name, &msg));
            }
        }
        let value_from_path = format!("{item_path}.valueFrom");
        if let Some(value_from) = map_field(env, "valueFrom", &value_from_path, errs) {
            let has_value = env
                .get("value")
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty());
            if has_value {
                errs.push(FieldError::invalid(
                    &value_from_path,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            let sources = [
                "fieldRef",
                "resourceFieldRef",
                "configMapKeyRef",
                "secretKeyRef",
                "fileKeyRef",
            ]
            .iter()
            .filter(|k| value_from.get(**k).is_some_and(|v| !v.is_null()))
            .count();
            if sources == 0 {
                errs.push(FieldError::invalid(&value_from_path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            } else if sources > 1 {
                errs.push(FieldError::invalid(
                    &value_from_path,
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
        }
    }
}

fn validate_resources(container: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let resources_path = format!("{path}.resources");
    let Some(resources) = map_field(container, "resources", &resources_path, errs) else {
        return;
    };
    let mut parsed: [Vec<(String, f64, String)>; 2] = [Vec::new(), Vec::new()];
    for (slot, key) in ["limits", "requests"].iter().enumerate() {
        let list_path = format!("{resources_path}.{key}");
        let Some(list) = map_field(resources, key, &list_path, errs) else {
            continue;
        };
        for (resource, quantity) in list {
            let entry_path = format!("{list_path}[{resource}]");
            let text = match quantity {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match quantity_value(quantity) {
                None => errs.push(FieldError::invalid(
                    &entry_path,
                    text.as_str(),
                    QUANTITY_FORMAT_ERROR,
                )),
                Some(v) if v < 0.0 => errs.push(FieldError::invalid(
                    &entry_path,
                    text.as_str(),
                    "must be greater than or equal to 0",
                )),
                Some(v) => parsed[slot].push((resource.clone(), v, text)),
            }
        }
    }
    let [limits, requests] = &parsed;
    for (resource, request, request_text) in requests {
        if let Some((_, limit, limit_text)) = limits.iter().find(|(name, _, _)| name == resource)
            && request > limit
        {
            errs.push(FieldError::invalid(
                &format!("{resources_path}.requests"),
                request_text.as_str(),
                &format!("must be less than or equal to {resource} limit of {limit_text}"),
            ));
        }
    }
}

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Only images, activeDeadlineSeconds, added tolerations, terminationGracePeriodSeconds and
/// removed scheduling gates may change on a Pod.
fn validate_pod_spec_update(
    spec: &Map<String, Value>,
    old_spec: &Value,
    errs: &mut Vec<FieldError>,
) {
    let Some(old_spec) = old_spec.as_object() else {
        return;
    };
    let mut comparable = spec.clone();
    for list in ["containers", "initContainers"] {
        let old_items = old_spec.get(list).and_then(Value::as_array);
        if let (Some(Value::Array(items)), Some(old_items)) = (comparable.get_mut(list), old_items)
            && items.len() == old_items.len()
        {
            for (item, old_item) in items.iter_mut().zip(old_items) {
                if let (Some(item), Some(old_image)) = (item.as_object_mut(), old_item.get("image"))
                {
                    item.insert("image".into(), old_image.clone());
                }
            }
        }
    }
    for key in [
        "activeDeadlineSeconds",
        "terminationGracePeriodSeconds",
        "schedulingGates",
    ] {
        match old_spec.get(key) {
            Some(value) => comparable.insert(key.into(), value.clone()),
            None => comparable.remove(key),
        };
    }
    let old_tolerations =
        array_field(old_spec, "tolerations", "spec.tolerations", &mut Vec::new()).to_vec();
    let new_tolerations = array_field(spec, "tolerations", "spec.tolerations", &mut Vec::new());
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        match old_spec.get("tolerations") {
            Some(value) => comparable.insert("tolerations".into(), value.clone()),
            None => comparable.remove("tolerations"),
        };
    }
    if &comparable != old_spec {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
}
