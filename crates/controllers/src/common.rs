//! Helpers shared by the controllers: label selectors, owner references, pod readiness and Events.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, MicroTime, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};

/// Errors of the controllers. Decision functions only fail on malformed objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid label selector: {0}")]
    InvalidSelector(String),
    #[error("invalid object: {0}")]
    InvalidObject(String),
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// Whether `labels` satisfy `selector` (matchLabels and matchExpressions, as upstream's
/// `metav1.LabelSelectorAsSelector`). An empty selector matches everything.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, Error> {
    if let Some(match_labels) = &selector.match_labels {
        for (key, value) in match_labels {
            if labels.get(key) != Some(value) {
                return Ok(false);
            }
        }
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let current = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        let satisfied = match requirement.operator.as_str() {
            "In" => current.is_some_and(|v| values.contains(v)),
            "NotIn" => current.is_none_or(|v| !values.contains(v)),
            "Exists" => current.is_some(),
            "DoesNotExist" => current.is_none(),
            other => {
                return Err(Error::InvalidSelector(format!(
                    "unknown operator {other:?} for key {:?}",
                    requirement.key
                )));
            }
        };
        if !satisfied {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the selector selects nothing at all: upstream refuses to manage with an empty selector
/// because it would adopt every pod of the namespace.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty())
}

/// Renders a selector in the `labelSelector` query syntax.
pub fn selector_to_query(selector: &LabelSelector) -> String {
    let mut parts = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        parts.push(format!("{key}={value}"));
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let values = requirement.values.clone().unwrap_or_default().join(",");
        match requirement.operator.as_str() {
            "In" => parts.push(format!("{} in ({values})", requirement.key)),
            "NotIn" => parts.push(format!("{} notin ({values})", requirement.key)),
            "Exists" => parts.push(requirement.key.clone()),
            "DoesNotExist" => parts.push(format!("!{}", requirement.key)),
            _ => {}
        }
    }
    parts.join(",")
}

/// The controller owner reference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// An owner reference marking `owner` as the managing controller, blocking owner deletion so
/// that foreground deletion waits for the dependent.
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Seconds between two instants, negative when `later` is before `earlier`.
pub fn seconds_between(earlier: Timestamp, later: Timestamp) -> i64 {
    later.as_second() - earlier.as_second()
}

/// Whether the pod counts as active: not terminal and not being deleted (upstream `IsPodActive`).
pub fn pod_is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The time the pod's Ready condition last turned True, if it is Ready.
pub fn pod_ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0))
}

pub fn pod_is_ready(pod: &Pod) -> bool {
    pod_ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (upstream `IsPodAvailable`).
pub fn pod_is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match pod_ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => seconds_between(since, now) >= i64::from(min_ready_seconds),
    }
}

/// Severity of an Event, as shown by `kubectl describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An Event to emit on the object a decision was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Reference to `object` as an Event's involvedObject.
pub fn object_reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: object.meta().name.clone(),
        namespace: object.meta().namespace.clone(),
        uid: object.meta().uid.clone(),
        resource_version: object.meta().resource_version.clone(),
        field_path: None,
    }
}

/// Builds the core/v1 Event that upstream's event recorder would write.
pub fn build_event(
    involved: &ObjectReference,
    event: &EventSpec,
    component: &str,
    now: Timestamp,
) -> Event {
    let namespace = involved
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let object_name = involved.name.clone().unwrap_or_default();
    // Upstream names events `<object>.<unique hex>`; a random suffix keeps names unique.
    let suffix: u64 = rand::random();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{object_name}.{suffix:016x}")),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: involved.clone(),
        reason: Some(event.reason.clone()),
        message: Some(event.message.clone()),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: None,
        related: None,
        series: None,
    }
}

/// Writes an Event. Failures are logged, not propagated: an Event must never block a reconcile.
pub async fn emit_event(
    client: &Client,
    involved: &ObjectReference,
    event: &EventSpec,
    component: &str,
) {
    let record = build_event(involved, event, component, Timestamp::now());
    let namespace = record.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &record).await {
        tracing::warn!(reason = %event.reason, %error, "failed to record event");
    }
}

/// The HTTP status code of an API error response, if the error is one.
pub fn api_error_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_match_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into(), "edge".into()]),
            }]),
        };
        assert!(selector_matches(&selector, &labels(&[("app", "web"), ("tier", "edge")])).unwrap());
        assert!(
            !selector_matches(&selector, &labels(&[("app", "web"), ("tier", "back")])).unwrap()
        );
        assert!(!selector_matches(&selector, &labels(&[("tier", "edge")])).unwrap());
        assert_eq!(selector_to_query(&selector), "app=web,tier in (front,edge)");
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        assert!(selector_matches(&selector, &BTreeMap::new()).is_err());
    }
}
