//! `POST pods/{name}/eviction` (upstream `pkg/registry/core/pod/storage/eviction.go`): a pod
//! goes only if its PodDisruptionBudget allows it; the budget's status (kept by the disruption
//! controller) is decremented first, with a resourceVersion-checked write, so two evictions
//! can never spend the same allowed disruption.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Value, json};
use timonel_api::selectors::LabelSelector;
use timonel_api::status::{ApiError, Cause};
use timonel_store::StoreError;

use crate::body::{self, meta_mut, name_of};
use crate::rest::{self, DeleteOptions, Request};
use crate::server::{Reply, State};

/// Upstream's `MaxDisruptedPodSize`.
const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// Upstream's `EvictionsRetry` has 20 steps.
const EVICTION_ATTEMPTS: usize = 20;
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// Terminal, pending and already-terminating pods have nothing a budget protects.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed" | "Pending")
    ) || pod["metadata"]["deletionTimestamp"].is_string()
}

/// Deleting a live pod is pinned to the resourceVersion read, so it cannot race the pod
/// becoming Ready (and protected) in between.
fn should_enforce_resource_version(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) && !pod["metadata"]["deletionTimestamp"].is_string()
}

fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn still_processing(name: &str) -> ApiError {
    ApiError::too_many_requests(VIOLATION, 10).with_causes(vec![Cause {
        reason: "DisruptionBudget".into(),
        message: format!("The disruption budget {name} is still being processed by the server."),
        field: String::new(),
    }])
}

/// The budgets of the pod's namespace that select it; a null or empty selector selects
/// nothing here, as upstream.
fn budgets_for(state: &State, namespace: &str, pod: &Value) -> Vec<String> {
    let prefix = format!("/registry/policy/poddisruptionbudgets/{namespace}/");
    let (items, _, _) = state.cache.list(&prefix, None, |_| true, 0);
    items
        .into_iter()
        .filter(|(_, pdb)| {
            LabelSelector::from_label_selector_json(&pdb.value()["spec"]["selector"])
                .is_ok_and(|s| !s.is_empty() && s.matches_object(pod))
        })
        .map(|(key, _)| key)
        .collect()
}

/// Sets the DisruptionAllowed condition after the budget reached zero (upstream's
/// `UpdateDisruptionAllowedCondition`).
fn mark_insufficient(status: &mut Value) {
    let observed = status["observedGeneration"].clone();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conditions = status["conditions"].as_array_mut().expect("array");
    let now = body::now_rfc3339();
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionAllowed")
    {
        Some(c) => {
            if c["status"] != "False" {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(now);
            }
            c["reason"] = json!("InsufficientPods");
            c["message"] = json!("");
            c["observedGeneration"] = observed;
        }
        None => conditions.push(json!({
            "type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
            "message": "", "observedGeneration": observed, "lastTransitionTime": now,
        })),
    }
}

/// Upstream's `checkAndDecrement`, retried on write conflicts.
async fn check_and_decrement(
    state: &Arc<State>,
    key: &str,
    pod_name: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let resource = timonel_api::status::Resource {
        group: "policy",
        plural: "poddisruptionbudgets",
    };
    let mut name = String::new();
    for _ in 0..EVICTION_ATTEMPTS {
        let current = state
            .cache
            .get(key)
            .ok_or_else(|| ApiError::not_found(resource, key.rsplit('/').next().unwrap_or("")))?;
        let mut pdb = current.value();
        name = name_of(&pdb).to_string();
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
        let status = &mut pdb["status"];
        if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
            return Err(still_processing(&name));
        }
        let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
        if allowed < 0 {
            return Err(ApiError::forbidden(format!(
                "poddisruptionbudget.policy \"{name}\" is forbidden: pdb disruptions allowed is negative"
            )));
        }
        let disrupted = status["disruptedPods"].as_object().map_or(0, |m| m.len());
        if disrupted > MAX_DISRUPTED_POD_SIZE {
            return Err(ApiError::forbidden(format!(
                "poddisruptionbudget.policy \"{name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            )));
        }
        if allowed == 0 {
            return Err(
                ApiError::too_many_requests(VIOLATION, 0).with_causes(vec![Cause {
                    reason: "DisruptionBudget".into(),
                    message: format!(
                        "The disruption budget {name} needs {} healthy pods and has {} currently",
                        status["desiredHealthy"].as_i64().unwrap_or(0),
                        status["currentHealthy"].as_i64().unwrap_or(0)
                    ),
                    field: String::new(),
                }]),
            );
        }
        status["disruptionsAllowed"] = json!(allowed - 1);
        if allowed - 1 == 0 {
            mark_insufficient(status);
        }
        if dry_run {
            return Ok(());
        }
        // The controller must not count this pod as healthy while its deletion is on the way.
        if !status["disruptedPods"].is_object() {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][pod_name] = json!(body::now_rfc3339());
        meta_mut(&mut pdb).remove("resourceVersion");
        let bytes = serde_json::to_vec(&pdb).expect("JSON serializes");
        match state.store.update(key, bytes, current.mod_revision).await {
            Ok(revision) => {
                state.cache.wait_for(revision).await;
                return Ok(());
            }
            Err(StoreError::Conflict { current, .. }) => state.cache.wait_for(current).await,
            Err(err) => return Err(ApiError::internal(err.to_string())),
        }
    }
    Err(ApiError::timeout(format!(
        "couldn't update PodDisruptionBudget \"{name}\" due to conflicts"
    )))
}

/// Upstream's `propagateDryRun`: the request's dryRun and the Eviction's must agree.
fn delete_options(req: &Request<'_>, eviction: &Value) -> Result<DeleteOptions, ApiError> {
    let from_query: Vec<String> = req.query.all("dryRun").to_vec();
    let from_body: Vec<String> = eviction["deleteOptions"]["dryRun"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if !from_query.is_empty() && !from_body.is_empty() && from_query != from_body {
        return Err(ApiError::bad_request(format!(
            "Non-matching dry-run options in request and content: [{}] and [{}]",
            from_query.join(" "),
            from_body.join(" ")
        )));
    }
    rest::delete_options_from(&eviction["deleteOptions"], req.query)
}

pub async fn evict(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let eviction = if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        json!({})
    } else {
        body::decode_object(req.content_type, req.body)?
    };
    let pod_name = req.path.name.clone().unwrap_or_default();
    if let Some(name) = eviction["metadata"]["name"].as_str()
        && name != pod_name
    {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = delete_options(req, &eviction)?;
    let caller_pinned_version = options.precondition_rv.is_some();
    let namespace = req.path.namespace.clone().unwrap_or_default();
    let key = req
        .info
        .object_key(req.path.namespace.as_deref(), &pod_name);
    let resource = timonel_api::status::Resource {
        group: "",
        plural: "pods",
    };

    // Pods no budget protects are deleted at once (retrying lost races on the pod).
    let mut attempts = 0;
    let (pod, pod_revision) = loop {
        let current = state
            .cache
            .get(&key)
            .ok_or_else(|| ApiError::not_found(resource, &pod_name))?;
        let pod = current.value();
        if !can_ignore_budget(&pod) {
            break (pod, current.mod_revision);
        }
        let mut pinned = options.clone();
        if should_enforce_resource_version(&pod) && !caller_pinned_version {
            pinned.precondition_rv = Some(current.mod_revision.to_string());
        }
        match rest::delete_object(state, req, &pod_name, &pinned).await {
            Ok(_) => return Ok(Reply::json(StatusCode::CREATED, success())),
            Err(e) if e.code == 409 && !caller_pinned_version && attempts < EVICTION_ATTEMPTS => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };

    let budgets = budgets_for(state, &namespace, &pod);
    if budgets.len() > 1 {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            "code": 500,
        });
        return Ok(Reply::json(StatusCode::INTERNAL_SERVER_ERROR, status));
    }
    let mut pin_to_read_version = false;
    let mut budget_name = String::new();
    if let Some(budget_key) = budgets.first() {
        let budget = state
            .cache
            .get(budget_key)
            .map(|b| b.value())
            .unwrap_or(Value::Null);
        budget_name = name_of(&budget).to_string();
        let status = &budget["status"];
        let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
        let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
        let always_allow =
            budget["spec"]["unhealthyPodEvictionPolicy"].as_str() == Some("AlwaysAllow");
        // An unready pod does not count as healthy: evicting it spends nothing, either always
        // (AlwaysAllow) or while the budget is met (IfHealthyBudget, the default).
        if !pod_is_ready(&pod) && (always_allow || (healthy >= desired && desired > 0)) {
            pin_to_read_version = true;
        } else {
            check_and_decrement(state, budget_key, &pod_name, options.dry_run).await?;
        }
    }

    let mut delete = options.clone();
    if pin_to_read_version {
        delete.precondition_rv = Some(pod_revision.to_string());
    }
    match rest::delete_object(state, req, &pod_name, &delete).await {
        Ok(_) => Ok(Reply::json(StatusCode::CREATED, success())),
        // The pod changed (perhaps became Ready) since the budget was judged: ask to retry.
        Err(e) if e.code == 409 && pin_to_read_version && !caller_pinned_version => {
            Err(still_processing(&budget_name))
        }
        Err(e) => Err(e),
    }
}
