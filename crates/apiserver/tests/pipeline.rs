//! The whole request pipeline over the in-memory store, without TLS: milliseconds per test.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use serde_json::{Value, json};
use timonel_apiserver::State;
use timonel_apiserver::server::handle;

mod support;
use support::{TOKEN, state};

struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Vec<u8>,
    content_type: &'a str,
    accept: &'a str,
    token: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Call {
            method,
            path,
            body: Vec::new(),
            content_type: "application/json",
            accept: "application/json",
            token: Some(TOKEN),
        }
    }
    fn json(mut self, v: Value) -> Self {
        self.body = serde_json::to_vec(&v).unwrap();
        self
    }
    fn content_type(mut self, ct: &'a str) -> Self {
        self.content_type = ct;
        self
    }
    fn accept(mut self, a: &'a str) -> Self {
        self.accept = a;
        self
    }

    async fn send(self, state: &Arc<State>) -> (u16, Value) {
        let mut req = hyper::Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("content-type", self.content_type)
            .header("accept", self.accept);
        if let Some(t) = self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(self.body))).unwrap();
        let resp = handle(state.clone(), None, req).await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
}

fn deployment(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    })
}

#[tokio::test]
async fn health_is_public_and_everything_else_needs_credentials() {
    let s = state().await;
    let mut call = Call::new(Method::GET, "/readyz");
    call.token = None;
    assert_eq!(call.send(&s).await.0, 200);
    let mut call = Call::new(Method::GET, "/api/v1/namespaces");
    call.token = None;
    let (code, body) = call.send(&s).await;
    assert_eq!(code, 401);
    assert_eq!(body["reason"], "Unauthorized");
    let mut call = Call::new(Method::GET, "/version");
    call.token = None;
    assert_eq!(call.send(&s).await.1["major"], "1");
}

#[tokio::test]
async fn default_namespaces_exist() {
    let s = state().await;
    let (code, list) = Call::new(Method::GET, "/api/v1/namespaces").send(&s).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns), "{ns} missing from {names:?}");
    }
    assert!(list["metadata"]["resourceVersion"].as_str().is_some());
}

#[tokio::test]
async fn create_get_update_conflict_delete() {
    let s = state().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, created) = Call::new(Method::POST, path)
        .json(configmap("c1"))
        .send(&s)
        .await;
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, again) = Call::new(Method::POST, path)
        .json(configmap("c1"))
        .send(&s)
        .await;
    assert_eq!(code, 409);
    assert_eq!(again["reason"], "AlreadyExists");

    let mut stale = created.clone();
    stale["data"]["a"] = json!("2");
    let (code, updated) = Call::new(Method::PUT, "/api/v1/namespaces/default/configmaps/c1")
        .json(stale.clone())
        .send(&s)
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str().unwrap(), rv);
    // The same stale resourceVersion now conflicts.
    let (code, conflict) = Call::new(Method::PUT, "/api/v1/namespaces/default/configmaps/c1")
        .json(stale)
        .send(&s)
        .await;
    assert_eq!(code, 409);
    assert_eq!(conflict["reason"], "Conflict");

    let (code, _) = Call::new(Method::DELETE, "/api/v1/namespaces/default/configmaps/c1")
        .send(&s)
        .await;
    assert_eq!(code, 200);
    let (code, gone) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps/c1")
        .send(&s)
        .await;
    assert_eq!(code, 404);
    assert_eq!(gone["message"], "configmaps \"c1\" not found");
}

#[tokio::test]
async fn missing_namespace_and_bad_names_are_rejected_without_writes() {
    let s = state().await;
    let (code, body) = Call::new(Method::POST, "/api/v1/namespaces/nope/configmaps")
        .json(configmap("x"))
        .send(&s)
        .await;
    assert_eq!(code, 404);
    assert_eq!(body["details"]["kind"], "namespaces");
    let (code, body) = Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
        .json(configmap("Foo_Bar"))
        .send(&s)
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    let (_, list) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps")
        .send(&s)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn oversized_and_malformed_bodies() {
    let s = state().await;
    let mut big = configmap("big");
    big["data"]["a"] = json!("x".repeat(3 * 1024 * 1024 + 10));
    let (code, body) = Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
        .json(big)
        .send(&s)
        .await;
    assert_eq!(code, 413);
    assert_eq!(body["reason"], "RequestEntityTooLarge");
    let mut call = Call::new(Method::POST, "/api/v1/namespaces/default/configmaps");
    call.body = b"{not json".to_vec();
    let (code, body) = call.send(&s).await;
    assert_eq!(code, 400);
    assert_eq!(body["reason"], "BadRequest");
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields() {
    let s = state().await;
    let mut d = deployment("web", "nginx:1.27");
    d["spec"]["replicasx"] = json!(3);
    let (code, body) = Call::new(
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
    )
    .json(d.clone())
    .send(&s)
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"spec.replicasx\""),
        "{body}"
    );
    let (code, _) = Call::new(
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Ignore",
    )
    .json(d)
    .send(&s)
    .await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn deployment_defaults_generation_and_status_split() {
    let s = state().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (code, d) = Call::new(Method::POST, base)
        .json(deployment("web", "nginx:1.27"))
        .send(&s)
        .await;
    assert_eq!(code, 201, "{d}");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    // A status write leaves spec and generation alone.
    let (code, st) = Call::new(Method::PATCH, &format!("{base}/web/status"))
        .content_type("application/merge-patch+json")
        .json(json!({"status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}}))
        .send(&s)
        .await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["metadata"]["generation"], 1);
    assert_eq!(st["status"]["replicas"], 1);
    // A spec write ignores status and bumps the generation.
    let (code, sp) = Call::new(Method::PATCH, &format!("{base}/web"))
        .content_type("application/merge-patch+json")
        .json(json!({"spec": {"replicas": 3}, "status": {"replicas": 99}}))
        .send(&s)
        .await;
    assert_eq!(code, 200, "{sp}");
    assert_eq!(sp["metadata"]["generation"], 2);
    assert_eq!(sp["status"]["replicas"], 1);
    // Labels only: no generation bump.
    let (_, lb) = Call::new(Method::PATCH, &format!("{base}/web"))
        .content_type("application/merge-patch+json")
        .json(json!({"metadata": {"labels": {"x": "y"}}}))
        .send(&s)
        .await;
    assert_eq!(lb["metadata"]["generation"], 2);
    // The selector is immutable.
    let (code, body) = Call::new(Method::PATCH, &format!("{base}/web"))
        .content_type("application/merge-patch+json")
        .json(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}, "template": {"metadata": {"labels": {"app": "other"}}}}}))
        .send(&s)
        .await;
    assert_eq!(code, 422, "{body}");
    // Scale subresource.
    let (code, scale) = Call::new(Method::PATCH, &format!("{base}/web/scale"))
        .content_type("application/merge-patch+json")
        .json(json!({"spec": {"replicas": 5}}))
        .send(&s)
        .await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let s = state().await;
    let mut cm = configmap("held");
    cm["metadata"]["finalizers"] = json!(["example.com/hold"]);
    Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
        .json(cm)
        .send(&s)
        .await;
    let (code, body) = Call::new(Method::DELETE, "/api/v1/namespaces/default/configmaps/held")
        .send(&s)
        .await;
    assert_eq!(code, 202, "{body}");
    assert!(body["metadata"]["deletionTimestamp"].is_string());
    let (code, _) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps/held")
        .send(&s)
        .await;
    assert_eq!(code, 200);
    let (code, _) = Call::new(Method::PATCH, "/api/v1/namespaces/default/configmaps/held")
        .content_type("application/merge-patch+json")
        .json(json!({"metadata": {"finalizers": null}}))
        .send(&s)
        .await;
    assert_eq!(code, 200);
    let (code, _) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps/held")
        .send(&s)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let s = state().await;
    let (code, body) = Call::new(
        Method::POST,
        "/api/v1/namespaces/default/configmaps?dryRun=All",
    )
    .json(configmap("dry"))
    .send(&s)
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps/dry")
        .send(&s)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn label_selectors_limit_and_continue() {
    let s = state().await;
    for i in 0..5 {
        let mut cm = configmap(&format!("c{i}"));
        cm["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
            .json(cm)
            .send(&s)
            .await;
    }
    let (_, even) = Call::new(
        Method::GET,
        "/api/v1/namespaces/default/configmaps?labelSelector=parity%3Deven",
    )
    .send(&s)
    .await;
    assert_eq!(even["items"].as_array().unwrap().len(), 3);
    let (_, page) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps?limit=2")
        .send(&s)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let token = page["metadata"]["continue"].as_str().unwrap().to_string();
    let (_, rest) = Call::new(
        Method::GET,
        &format!("/api/v1/namespaces/default/configmaps?limit=10&continue={token}"),
    )
    .send(&s)
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert!(rest["metadata"]["continue"].is_null());
    let (_, by_name) = Call::new(
        Method::GET,
        "/api/v1/configmaps?fieldSelector=metadata.name%3Dc3",
    )
    .send(&s)
    .await;
    assert_eq!(by_name["items"][0]["metadata"]["name"], "c3");
}

#[tokio::test]
async fn tables_for_kubectl_get() {
    let s = state().await;
    Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
        .json(configmap("t"))
        .send(&s)
        .await;
    let (code, table) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps")
        .accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
        .send(&s)
        .await;
    assert_eq!(code, 200);
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "t");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn discovery_lists_groups_and_resources() {
    let s = state().await;
    let (_, apis) = Call::new(Method::GET, "/apis").send(&s).await;
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(groups.contains(&"apps") && groups.contains(&"apiextensions.k8s.io"));
    let (_, v1) = Call::new(Method::GET, "/api/v1").send(&s).await;
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"pods/eviction") && names.contains(&"pods/log"));
    let (_, agg) = Call::new(Method::GET, "/apis")
        .accept(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .send(&s)
        .await;
    assert_eq!(agg["kind"], "APIGroupDiscoveryList");
}

#[tokio::test]
async fn watch_streams_changes_after_a_resource_version() {
    let s = state().await;
    let (_, list) = Call::new(Method::GET, "/api/v1/namespaces/default/configmaps")
        .send(&s)
        .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let req = hyper::Request::builder()
        .uri(format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
        ))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = handle(s.clone(), None, req).await;
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;stream=watch"
    );
    let mut body = resp.into_body();
    Call::new(Method::POST, "/api/v1/namespaces/default/configmaps")
        .json(configmap("w1"))
        .send(&s)
        .await;
    Call::new(Method::DELETE, "/api/v1/namespaces/default/configmaps/w1")
        .send(&s)
        .await;
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let data = frame.into_data().unwrap();
        for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines.push(serde_json::from_slice::<Value>(line).unwrap());
        }
    }
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "w1");
    assert_eq!(lines[1]["type"], "DELETED");
}

#[tokio::test]
async fn crd_serves_custom_resources_with_validation() {
    let s = state().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}, "color": {"type": "string"}}},
                    "status": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]
        }
    });
    let (code, body) = Call::new(
        Method::POST,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    )
    .json(crd)
    .send(&s)
    .await;
    assert_eq!(code, 201, "{body}");
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2, "color": "red"}});
    let (code, body) = Call::new(
        Method::POST,
        "/apis/example.com/v1/namespaces/default/widgets",
    )
    .json(w)
    .send(&s)
    .await;
    assert_eq!(code, 201, "{body}");
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": "big"}});
    let (code, body) = Call::new(
        Method::POST,
        "/apis/example.com/v1/namespaces/default/widgets",
    )
    .json(bad)
    .send(&s)
    .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "spec.size");
    let (code, scale) = Call::new(
        Method::GET,
        "/apis/example.com/v1/namespaces/default/widgets/w/scale",
    )
    .send(&s)
    .await;
    assert_eq!(code, 200);
    assert_eq!(scale["spec"]["replicas"], 2);
}

#[tokio::test]
async fn namespace_deletion_waits_for_finalize() {
    let s = state().await;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}});
    let (code, created) = Call::new(Method::POST, "/api/v1/namespaces")
        .json(ns)
        .send(&s)
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    let (code, deleting) = Call::new(Method::DELETE, "/api/v1/namespaces/doomed")
        .send(&s)
        .await;
    assert_eq!(code, 202, "{deleting}");
    assert_eq!(deleting["status"]["phase"], "Terminating");
    // New content is refused while terminating.
    let (code, body) = Call::new(Method::POST, "/api/v1/namespaces/doomed/configmaps")
        .json(configmap("late"))
        .send(&s)
        .await;
    assert_eq!(code, 403, "{body}");
    // An ordinary update cannot drop the spec finalizer; /finalize can.
    let mut update = deleting.clone();
    update["spec"]["finalizers"] = json!([]);
    let (code, kept) = Call::new(Method::PUT, "/api/v1/namespaces/doomed")
        .json(update.clone())
        .send(&s)
        .await;
    assert_eq!(code, 200, "{kept}");
    assert_eq!(kept["spec"]["finalizers"], json!(["kubernetes"]));
    update["metadata"]["resourceVersion"] = kept["metadata"]["resourceVersion"].clone();
    let (code, body) = Call::new(Method::PUT, "/api/v1/namespaces/doomed/finalize")
        .json(update)
        .send(&s)
        .await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = Call::new(Method::GET, "/api/v1/namespaces/doomed")
        .send(&s)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn priority_class_sets_pod_priority() {
    let s = state().await;
    let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000});
    let (code, body) = Call::new(Method::POST, "/apis/scheduling.k8s.io/v1/priorityclasses")
        .json(pc)
        .send(&s)
        .await;
    assert_eq!(code, 201, "{body}");
    let pod = |class: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("p-{class}")},
        "spec": {"priorityClassName": class, "containers": [{"name": "c", "image": "busybox:1.36"}]}})
    };
    let (code, created) = Call::new(Method::POST, "/api/v1/namespaces/default/pods")
        .json(pod("high"))
        .send(&s)
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["priority"], 1000);
    let (code, body) = Call::new(Method::POST, "/api/v1/namespaces/default/pods")
        .json(pod("nope"))
        .send(&s)
        .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no PriorityClass with name nope was found")
    );
}
