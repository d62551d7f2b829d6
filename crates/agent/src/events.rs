//! core/v1 Events about pods, as kubelet emits them (source component `kubelet`), posted in
//! the background so a slow API never holds up a pod.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node_name: String,
}

impl Recorder {
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        Recorder {
            client,
            node_name: node_name.to_string(),
        }
    }

    /// Records `reason` on `pod`; `container` names the field path `spec.containers{name}`
    /// (or `spec.initContainers{name}`) as upstream does.
    pub fn pod_event(
        &self,
        pod: &Pod,
        container: Option<(&str, bool)>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = chrono::Utc::now();
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut involved = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": namespace,
            "name": name,
            "uid": pod.metadata.uid,
            "resourceVersion": pod.metadata.resource_version,
        });
        if let Some((c, init)) = container {
            let field = if init {
                "spec.initContainers"
            } else {
                "spec.containers"
            };
            involved["fieldPath"] = json!(format!("{field}{{{c}}}"));
        }
        let suffix = format!("{:x}", now.timestamp_nanos_opt().unwrap_or_default());
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{name}.{suffix}"), "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": if warning { "Warning" } else { "Normal" },
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": null,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
        });
        let client = self.client.clone();
        tokio::spawn(async move {
            let Ok(event) = serde_json::from_value::<Event>(event) else {
                return;
            };
            let api: Api<Event> = Api::namespaced(client, &namespace);
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!("posting an event: {e}");
            }
        });
    }
}
