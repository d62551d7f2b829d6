//! The eviction subresource against PodDisruptionBudgets, over the in-memory store.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use serde_json::{Value, json};
use timonel_apiserver::State;
use timonel_apiserver::server::handle;

mod support;
use support::{TOKEN, state};

const PODS: &str = "/api/v1/namespaces/default/pods";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

async fn call(s: &Arc<State>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let content_type = if method == Method::PATCH {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    let resp = handle(s.clone(), None, req).await;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// A pod labelled app=web in `phase`, Ready or not.
async fn pod(s: &Arc<State>, name: &str, phase: &str, ready: bool) {
    let body = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}});
    let (code, created) = call(s, Method::POST, PODS, Some(body)).await;
    assert_eq!(code, 201, "{created}");
    let status = json!({"status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    let path = format!("{PODS}/{name}/status");
    let (code, patched) = call(s, Method::PATCH, &path, Some(status)).await;
    assert_eq!(code, 200, "{patched}");
}

async fn pod_exists(s: &Arc<State>, name: &str) -> bool {
    call(s, Method::GET, &format!("{PODS}/{name}"), None)
        .await
        .0
        == 200
}

/// A budget selecting app=web, with the status the disruption controller would write.
async fn budget(s: &Arc<State>, name: &str, spec: Value, status: Option<Value>) {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": "web"}});
    let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name}, "spec": spec});
    let (code, created) = call(s, Method::POST, PDBS, Some(body)).await;
    assert_eq!(code, 201, "{created}");
    if let Some(status) = status {
        set_status(s, name, status).await;
    }
}

async fn set_status(s: &Arc<State>, name: &str, status: Value) {
    let path = format!("{PDBS}/{name}/status");
    let (code, patched) = call(s, Method::PATCH, &path, Some(json!({"status": status}))).await;
    assert_eq!(code, 200, "{patched}");
}

fn healthy(allowed: i64, current: i64, desired: i64) -> Value {
    json!({"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": current,
           "desiredHealthy": desired, "expectedPods": current})
}

async fn evict(s: &Arc<State>, name: &str, query: &str, delete_options: Value) -> (u16, Value) {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"}, "deleteOptions": delete_options});
    call(
        s,
        Method::POST,
        &format!("{PODS}/{name}/eviction{query}"),
        Some(body),
    )
    .await
}

async fn get_budget(s: &Arc<State>, name: &str) -> Value {
    call(s, Method::GET, &format!("{PDBS}/{name}"), None)
        .await
        .1
}

#[tokio::test]
async fn a_pod_without_budget_is_evicted() {
    let s = state().await;
    pod(&s, "free", "Running", true).await;
    let (code, body) = evict(&s, "free", "", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["status"], "Success");
    assert!(!pod_exists(&s, "free").await);
}

#[tokio::test]
async fn a_budget_not_yet_observed_refuses() {
    let s = state().await;
    pod(&s, "web-1", "Running", true).await;
    budget(&s, "budget", json!({"minAvailable": 1}), None).await;
    let (code, body) = evict(&s, "web-1", "", json!({})).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["message"], VIOLATION);
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget budget is still being processed by the server."
    );
    assert!(pod_exists(&s, "web-1").await);
}

#[tokio::test]
async fn an_exhausted_budget_refuses_with_the_upstream_cause() {
    let s = state().await;
    pod(&s, "web-1", "Running", true).await;
    budget(
        &s,
        "budget",
        json!({"minAvailable": 1}),
        Some(healthy(0, 1, 1)),
    )
    .await;
    let (code, body) = evict(&s, "web-1", "", json!({})).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["message"], VIOLATION);
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget budget needs 1 healthy pods and has 1 currently"
    );
    assert!(pod_exists(&s, "web-1").await);
}

#[tokio::test]
async fn an_allowed_eviction_spends_the_budget_and_records_the_pod() {
    let s = state().await;
    pod(&s, "web-1", "Running", true).await;
    pod(&s, "web-2", "Running", true).await;
    budget(
        &s,
        "budget",
        json!({"minAvailable": 1}),
        Some(healthy(1, 2, 1)),
    )
    .await;

    // A dry run changes nothing.
    let (code, body) = evict(&s, "web-1", "?dryRun=All", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert!(pod_exists(&s, "web-1").await);
    assert_eq!(
        get_budget(&s, "budget").await["status"]["disruptionsAllowed"],
        1
    );

    let (code, body) = evict(&s, "web-1", "", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert!(!pod_exists(&s, "web-1").await);
    let status = get_budget(&s, "budget").await["status"].clone();
    assert_eq!(status["disruptionsAllowed"], 0);
    assert!(status["disruptedPods"]["web-1"].is_string(), "{status}");
    let condition = &status["conditions"][0];
    assert_eq!(condition["type"], "DisruptionAllowed");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "InsufficientPods");

    // The budget is spent until the controller says otherwise.
    let (code, _) = evict(&s, "web-2", "", json!({})).await;
    assert_eq!(code, 429);
    assert!(pod_exists(&s, "web-2").await);
}

#[tokio::test]
async fn delete_options_are_honoured() {
    let s = state().await;
    pod(&s, "web-1", "Running", true).await;
    budget(
        &s,
        "budget",
        json!({"maxUnavailable": 1}),
        Some(healthy(2, 2, 0)),
    )
    .await;
    // The budget is spent before the delete runs, as upstream: allow two.
    let (code, body) = evict(
        &s,
        "web-1",
        "",
        json!({"preconditions": {"uid": "not-the-pod"}}),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(pod_exists(&s, "web-1").await);
    let (code, body) = evict(&s, "web-1", "?dryRun=All", json!({"dryRun": ["All"]})).await;
    assert_eq!(code, 201, "{body}");
    assert!(pod_exists(&s, "web-1").await);
}

#[tokio::test]
async fn pending_and_terminal_pods_ignore_budgets() {
    let s = state().await;
    pod(&s, "pending", "Pending", false).await;
    pod(&s, "done", "Succeeded", false).await;
    budget(
        &s,
        "budget",
        json!({"minAvailable": 5}),
        Some(healthy(0, 0, 5)),
    )
    .await;
    for name in ["pending", "done"] {
        let (code, body) = evict(&s, name, "", json!({})).await;
        assert_eq!(code, 201, "{name}: {body}");
        assert!(!pod_exists(&s, name).await, "{name}");
    }
}

#[tokio::test]
async fn two_budgets_are_not_supported() {
    let s = state().await;
    pod(&s, "web-1", "Running", true).await;
    budget(
        &s,
        "one",
        json!({"minAvailable": 0}),
        Some(healthy(1, 1, 0)),
    )
    .await;
    budget(
        &s,
        "two",
        json!({"minAvailable": 0}),
        Some(healthy(1, 1, 0)),
    )
    .await;
    let (code, body) = evict(&s, "web-1", "", json!({})).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    assert!(pod_exists(&s, "web-1").await);
}

#[tokio::test]
async fn unhealthy_pods_follow_the_eviction_policy() {
    // IfHealthyBudget (the default): an unready pod goes while the budget is met, without
    // spending it, and stays while it is not.
    let s = state().await;
    pod(&s, "sick", "Running", false).await;
    budget(
        &s,
        "budget",
        json!({"minAvailable": 1}),
        Some(healthy(0, 1, 1)),
    )
    .await;
    let (code, body) = evict(&s, "sick", "", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        get_budget(&s, "budget").await["status"]["disruptionsAllowed"],
        0
    );

    pod(&s, "sick-2", "Running", false).await;
    set_status(&s, "budget", healthy(0, 0, 1)).await;
    let (code, _) = evict(&s, "sick-2", "", json!({})).await;
    assert_eq!(code, 429);

    // AlwaysAllow: unready pods always go.
    let path = format!("{PDBS}/budget");
    let (code, body) = call(
        &s,
        Method::PATCH,
        &path,
        Some(json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let generation = body["metadata"]["generation"].as_i64().unwrap();
    let mut status = healthy(0, 0, 1);
    status["observedGeneration"] = json!(generation);
    set_status(&s, "budget", status).await;
    let (code, body) = evict(&s, "sick-2", "", json!({})).await;
    assert_eq!(code, 201, "{body}");
    assert!(!pod_exists(&s, "sick-2").await);
}
