//! Workload controllers: Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController,
//! Job and CronJob.

use super::pod::validate_pod_template;
use super::{
    Ctx, FieldError, bool_field, enum_field, int_field, map_field, non_negative, str_field,
};
use crate::cron::parse_schedule;
use crate::selectors::LabelSelector;
use regex::Regex;
use serde_json::{Map, Value};
use std::sync::LazyLock;

fn spec_of<'a>(ctx: &Ctx<'a>, errs: &mut Vec<FieldError>) -> Option<&'a Map<String, Value>> {
    let spec = map_field(ctx.root, "spec", "spec", errs);
    if spec.is_none() && !ctx.root.contains_key("spec") {
        errs.push(FieldError::required("spec.selector", ""));
    }
    spec
}

fn old_spec<'a>(ctx: &Ctx<'a>) -> Option<&'a Value> {
    ctx.old.and_then(|o| o.get("spec"))
}

fn template_labels(spec: &Map<String, Value>) -> Map<String, Value> {
    spec.get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A `metav1.LabelSelector` that must be present, non-empty and match the template's labels.
fn validate_selector_and_template(
    spec: &Map<String, Value>,
    kind_word: &str,
    errs: &mut Vec<FieldError>,
) {
    match spec.get("selector") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.selector", "")),
        Some(selector) => {
            let empty = selector.as_object().is_some_and(|s| {
                let labels_empty = s
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty);
                let exprs_empty = s
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
                labels_empty && exprs_empty
            });
            if empty {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    selector.clone(),
                    &format!("empty selector is invalid for {kind_word}"),
                ));
            } else {
                match LabelSelector::from_label_selector_json(selector) {
                    Err(e) => errs.push(FieldError::invalid(
                        "spec.selector",
                        selector.clone(),
                        &e.to_string(),
                    )),
                    Ok(parsed) => {
                        let labels = template_labels(spec);
                        if !parsed.matches(&labels) {
                            errs.push(FieldError::invalid(
                                "spec.template.metadata.labels",
                                Value::Object(labels),
                                "`selector` does not match template `labels`",
                            ));
                        }
                    }
                }
            }
        }
    }
    match map_field(spec, "template", "spec.template", errs) {
        Some(template) => {
            if kind_word == "statefulset" {
                let template = with_claim_template_volumes(spec, template);
                validate_pod_template(&template, "spec.template", errs)
            } else {
                validate_pod_template(template, "spec.template", errs)
            }
        }
        None => errs.push(FieldError::required("spec.template", "")),
    }
}

/// A StatefulSet's containers may mount its volumeClaimTemplates by name: the controller adds
/// those volumes to each pod, so validation sees them as persistentVolumeClaim volumes.
fn with_claim_template_volumes(
    spec: &Map<String, Value>,
    template: &Map<String, Value>,
) -> Map<String, Value> {
    let mut template = template.clone();
    let names: Vec<Value> = spec
        .get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").cloned())
        .collect();
    if names.is_empty() {
        return template;
    }
    if let Some(pod_spec) = template.get_mut("spec").and_then(Value::as_object_mut) {
        let volumes = pod_spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if volumes.is_null() {
            *volumes = Value::Array(Vec::new());
        }
        if let Some(volumes) = volumes.as_array_mut() {
            for name in names {
                if !volumes.iter().any(|v| v.get("name") == Some(&name)) {
                    let claim = serde_json::json!({"name": name, "persistentVolumeClaim": {"claimName": name}});
                    volumes.push(claim);
                }
            }
        }
    }
    template
}

fn template_restart_policy(
    spec: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let policy = spec
        .get("template")
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("restartPolicy"))
        .and_then(Value::as_str);
    if let Some(policy) = policy
        && !policy.is_empty()
        && !allowed.contains(&policy)
    {
        errs.push(FieldError::not_supported(path, policy, allowed));
    }
}

fn selector_immutable(ctx: &Ctx, spec: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    if let Some(old_spec) = old_spec(ctx)
        && old_spec.get("selector") != spec.get("selector")
    {
        errs.push(FieldError::immutable(
            "spec.selector",
            spec.get("selector").cloned().unwrap_or(Value::Null),
        ));
    }
}

static PERCENT_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[0-9]+%$").expect("static regex"));

/// An int-or-percent (`maxSurge`, `maxUnavailable`); returns whether it is zero.
fn int_or_percent(
    map: &Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<bool> {
    match map.get(key)? {
        Value::Number(n) => match n.as_i64() {
            Some(v) if v < 0 => {
                errs.push(FieldError::invalid(
                    path,
                    v,
                    "must be greater than or equal to 0",
                ));
                None
            }
            Some(v) => Some(v == 0),
            None => {
                errs.push(FieldError::type_invalid(
                    path,
                    Value::Number(n.clone()),
                    "must be an integer or percentage",
                ));
                None
            }
        },
        Value::String(s) => {
            if !PERCENT_RE.is_match(s) {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
                return None;
            }
            let percent: u64 = s.trim_end_matches('%').parse().unwrap_or(u64::MAX);
            if percent > 100 && key == "maxUnavailable" {
                errs.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            Some(percent == 0)
        }
        Value::Null => None,
        other => {
            errs.push(FieldError::type_invalid(
                path,
                other.clone(),
                "must be an integer or percentage",
            ));
            None
        }
    }
}

fn rolling_update_not_both_zero(
    rolling: &Map<String, Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let unavailable_zero = int_or_percent(
        rolling,
        "maxUnavailable",
        &format!("{path}.maxUnavailable"),
        errs,
    );
    let surge_zero = int_or_percent(rolling, "maxSurge", &format!("{path}.maxSurge"), errs);
    if unavailable_zero == Some(true) && surge_zero.unwrap_or(true) {
        errs.push(FieldError::invalid(
            &format!("{path}.maxUnavailable"),
            rolling
                .get("maxUnavailable")
                .cloned()
                .unwrap_or(Value::Null),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

pub(crate) fn validate_deployment(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec_of(ctx, errs) else {
        return;
    };
    non_negative(spec, "replicas", "spec.replicas", errs);
    validate_selector_and_template(spec, "deployment", errs);
    template_restart_policy(spec, "spec.template.spec.restartPolicy", &["Always"], errs);
    if let Some(strategy) = map_field(spec, "strategy", "spec.strategy", errs) {
        let strategy_type = str_field(strategy, "type", "spec.strategy.type", errs).unwrap_or("");
        let rolling = map_field(
            strategy,
            "rollingUpdate",
            "spec.strategy.rollingUpdate",
            errs,
        );
        match strategy_type {
            "Recreate" => {
                if rolling.is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match rolling {
                Some(rolling) => {
                    rolling_update_not_both_zero(rolling, "spec.strategy.rollingUpdate", errs)
                }
                None => errs.push(FieldError::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                )),
            },
            "" => errs.push(FieldError::required("spec.strategy.type", "")),
            other => errs.push(FieldError::not_supported(
                "spec.strategy.type",
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    non_negative(spec, "minReadySeconds", "spec.minReadySeconds", errs);
    non_negative(
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
    if let Some(deadline) = int_field(
        spec,
        "progressDeadlineSeconds",
        "spec.progressDeadlineSeconds",
        errs,
    ) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline < 0 {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than or equal to 0",
            ));
        } else if deadline <= min_ready {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    selector_immutable(ctx, spec, errs);
}

pub(crate) fn validate_replica_set(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec_of(ctx, errs) else {
        return;
    };
    non_negative(spec, "replicas", "spec.replicas", errs);
    non_negative(spec, "minReadySeconds", "spec.minReadySeconds", errs);
    validate_selector_and_template(spec, "deployment", errs);
    template_restart_policy(spec, "spec.template.spec.restartPolicy", &["Always"], errs);
    selector_immutable(ctx, spec, errs);
}

pub(crate) fn validate_replication_controller(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        return;
    };
    non_negative(spec, "replicas", "spec.replicas", errs);
    let selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if selector.is_empty() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        let labels = template_labels(spec);
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                Value::Object(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    match map_field(spec, "template", "spec.template", errs) {
        Some(template) => validate_pod_template(template, "spec.template", errs),
        None => errs.push(FieldError::required("spec.template", "")),
    }
}

pub(crate) fn validate_daemon_set(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec_of(ctx, errs) else {
        return;
    };
    validate_selector_and_template(spec, "daemonset", errs);
    template_restart_policy(spec, "spec.template.spec.restartPolicy", &["Always"], errs);
    if let Some(strategy) = map_field(spec, "updateStrategy", "spec.updateStrategy", errs) {
        match str_field(strategy, "type", "spec.updateStrategy.type", errs).unwrap_or("") {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(rolling) = map_field(
                    strategy,
                    "rollingUpdate",
                    "spec.updateStrategy.rollingUpdate",
                    errs,
                ) {
                    rolling_update_not_both_zero(
                        rolling,
                        "spec.updateStrategy.rollingUpdate",
                        errs,
                    );
                }
            }
            "" => errs.push(FieldError::required("spec.updateStrategy.type", "")),
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
    non_negative(spec, "minReadySeconds", "spec.minReadySeconds", errs);
    non_negative(
        spec,
        "revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errs,
    );
    selector_immutable(ctx, spec, errs);
}

const STATEFUL_SET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub(crate) fn validate_stateful_set(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec_of(ctx, errs) else {
        return;
    };
    non_negative(spec, "replicas", "spec.replicas", errs);
    enum_field(
        spec,
        "podManagementPolicy",
        "spec.podManagementPolicy",
        &["OrderedReady", "Parallel"],
        true,
        errs,
    );
    if let Some(strategy) = map_field(spec, "updateStrategy", "spec.updateStrategy", errs) {
        match str_field(strategy, "type", "spec.updateStrategy.type", errs).unwrap_or("") {
            "OnDelete" => {
                if strategy.get("rollingUpdate").is_some_and(|r| !r.is_null()) {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        strategy["rollingUpdate"].clone(),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            "RollingUpdate" => {
                if let Some(rolling) = map_field(
                    strategy,
                    "rollingUpdate",
                    "spec.updateStrategy.rollingUpdate",
                    errs,
                ) {
                    non_negative(
                        rolling,
                        "partition",
                        "spec.updateStrategy.rollingUpdate.partition",
                        errs,
                    );
                }
            }
            "" => errs.push(FieldError::required("spec.updateStrategy", "")),
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                other,
                &["OnDelete", "RollingUpdate"],
            )),
        }
    }
    if let Some(policy) = map_field(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        "spec.persistentVolumeClaimRetentionPolicy",
        errs,
    ) {
        for key in ["whenDeleted", "whenScaled"] {
            enum_field(
                policy,
                key,
                &format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                &["Retain", "Delete"],
                false,
                errs,
            );
        }
    }
    validate_selector_and_template(spec, "statefulset", errs);
    template_restart_policy(spec, "spec.template.spec.restartPolicy", &["Always"], errs);
    non_negative(spec, "minReadySeconds", "spec.minReadySeconds", errs);
    if let Some(old_spec) = old_spec(ctx).and_then(Value::as_object) {
        let mutable = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let strip = |m: &Map<String, Value>| {
            let mut m = m.clone();
            for key in mutable {
                m.remove(key);
            }
            m
        };
        if strip(spec) != strip(old_spec) {
            errs.push(FieldError::forbidden("spec", STATEFUL_SET_UPDATE_FORBIDDEN));
        }
    }
}

pub(crate) fn validate_job(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    let Some(spec) = spec_of(ctx, errs) else {
        return;
    };
    validate_job_spec(spec, errs);
    if spec.get("selector").is_none_or(Value::is_null) {
        errs.push(FieldError::required("spec.selector", ""));
    } else if let Some(selector) = spec.get("selector") {
        match LabelSelector::from_label_selector_json(selector) {
            Err(e) => errs.push(FieldError::invalid(
                "spec.selector",
                selector.clone(),
                &e.to_string(),
            )),
            Ok(parsed) => {
                let labels = template_labels(spec);
                if !parsed.matches(&labels) {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        Value::Object(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    if let Some(old_spec) = old_spec(ctx) {
        for key in ["selector", "template", "completionMode"] {
            if old_spec.get(key) != spec.get(key) {
                errs.push(FieldError::immutable(
                    &format!("spec.{key}"),
                    spec.get(key).cloned().unwrap_or(Value::Null),
                ));
            }
        }
        let indexed = spec.get("completionMode").and_then(Value::as_str) == Some("Indexed");
        if !indexed && old_spec.get("completions") != spec.get("completions") {
            errs.push(FieldError::immutable(
                "spec.completions",
                spec.get("completions").cloned().unwrap_or(Value::Null),
            ));
        }
    }
}

/// The parts of a JobSpec shared with CronJob's `jobTemplate.spec` (paths under `spec.`).
fn validate_job_spec(spec: &Map<String, Value>, errs: &mut Vec<FieldError>) {
    validate_job_spec_at(spec, "spec", errs)
}

fn validate_job_spec_at(spec: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(spec, key, &format!("{path}.{key}"), errs);
    }
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
            "must be greater than 0",
        ));
    }
    bool_field(spec, "suspend", &format!("{path}.suspend"), errs);
    enum_field(
        spec,
        "completionMode",
        &format!("{path}.completionMode"),
        &["NonIndexed", "Indexed"],
        false,
        errs,
    );
    if spec.get("completionMode").and_then(Value::as_str) == Some("Indexed")
        && spec.get("completions").is_none_or(Value::is_null)
    {
        errs.push(FieldError::required(
            &format!("{path}.completions"),
            "when completion mode is Indexed",
        ));
    }
    let template_path = format!("{path}.template");
    match map_field(spec, "template", &template_path, errs) {
        Some(template) => validate_pod_template(template, &template_path, errs),
        None => errs.push(FieldError::required(&template_path, "")),
    }
    template_restart_policy(
        spec,
        &format!("{template_path}.spec.restartPolicy"),
        &["OnFailure", "Never"],
        errs,
    );
}

pub(crate) fn validate_cron_job(ctx: &Ctx, errs: &mut Vec<FieldError>) {
    // The name also names Jobs with an 11-character suffix, which must fit in 63.
    if let Some(name) = ctx
        .root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        && name.len() > 52
    {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be no more than 52 characters",
        ));
    }
    let Some(spec) = map_field(ctx.root, "spec", "spec", errs) else {
        errs.push(FieldError::required("spec.schedule", ""));
        return;
    };
    match str_field(spec, "schedule", "spec.schedule", errs) {
        None | Some("") => errs.push(FieldError::required("spec.schedule", "")),
        Some(schedule) => {
            if schedule.contains("TZ") {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            } else if let Err(message) = parse_schedule(schedule) {
                errs.push(FieldError::invalid("spec.schedule", schedule, &message));
            }
        }
    }
    if let Some(zone) = str_field(spec, "timeZone", "spec.timeZone", errs)
        && let Err(message) = crate::cron::validate_time_zone(zone)
    {
        errs.push(FieldError::invalid("spec.timeZone", zone, &message));
    }
    enum_field(
        spec,
        "concurrencyPolicy",
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
        true,
        errs,
    );
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        non_negative(spec, key, &format!("spec.{key}"), errs);
    }
    match map_field(spec, "jobTemplate", "spec.jobTemplate", errs)
        .and_then(|t| map_field(t, "spec", "spec.jobTemplate.spec", errs))
    {
        Some(job_spec) => validate_job_spec_at(job_spec, "spec.jobTemplate.spec", errs),
        None => errs.push(FieldError::required("spec.jobTemplate.spec.template", "")),
    }
}
