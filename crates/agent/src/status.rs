//! A pod's status as kubelet reports it: phase (upstream's `getPhase`), conditions, and
//! container statuses with states, reasons, exit codes, restart counts and last states.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use timonel_runtime::native::{ContainerInfo, ContainerState};

use crate::sync::Waiting;

/// What the worker knows of one container besides the runtime's view.
#[derive(Debug, Clone, Default)]
pub struct ContainerView<'a> {
    pub latest: Option<&'a ContainerInfo>,
    /// The attempt before the latest one (for `lastState`).
    pub previous: Option<&'a ContainerInfo>,
    pub waiting: Option<&'a Waiting>,
    /// Readiness probe result (true when it has none).
    pub ready: bool,
    /// Startup probe passed (true when it has none).
    pub started: bool,
}

pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub init: BTreeMap<String, ContainerView<'a>>,
    pub regular: BTreeMap<String, ContainerView<'a>>,
    pub initialized: bool,
    pub sandbox_ready: bool,
    pub host_ip: &'a str,
    pub pod_ip: Option<&'a str>,
    pub now: &'a str,
    pub qos_class: &'a str,
}

fn container_id(info: &ContainerInfo) -> String {
    format!("timonel://{}", info.id)
}

fn terminated_reason(code: i32, oom: bool, error: Option<&str>) -> &'static str {
    if oom {
        "OOMKilled"
    } else if error.is_some() {
        "StartError"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// The `state` object of one attempt.
fn state_of(info: &ContainerInfo) -> Value {
    match &info.state {
        ContainerState::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
        ContainerState::Running(s) => json!({"running": {"startedAt": seconds(&s.started_at)}}),
        ContainerState::Exited { started, exited } => {
            let mut t = json!({
                "exitCode": exited.exit_code,
                "reason": terminated_reason(exited.exit_code, exited.oom_killed, exited.error.as_deref()),
                "startedAt": started.as_ref().map(|s| seconds(&s.started_at)).unwrap_or_else(|| seconds(&exited.finished_at)),
                "finishedAt": seconds(&exited.finished_at),
                "containerID": container_id(info),
            });
            if let Some(sig) = exited.signal {
                t["signal"] = json!(sig);
            }
            if let Some(e) = &exited.error {
                t["message"] = json!(e);
            }
            json!({ "terminated": t })
        }
    }
}

/// RFC 3339 with whole seconds, as metav1.Time serializes.
fn seconds(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|_| text.to_string())
}

fn container_status(c: &Container, view: &ContainerView<'_>) -> Value {
    let image = c.image.clone().unwrap_or_default();
    let mut status = json!({
        "name": c.name,
        "image": image,
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": "ContainerCreating"}},
        "lastState": {},
    });
    if let Some(latest) = view.latest {
        let running = matches!(latest.state, ContainerState::Running(_));
        status["containerID"] = json!(container_id(latest));
        status["imageID"] = json!(latest.meta.image_id);
        status["restartCount"] = json!(latest.meta.attempt);
        status["state"] = state_of(latest);
        status["ready"] = json!(running && view.ready && view.started);
        status["started"] = json!(running && view.started);
        if let Some(previous) = view.previous {
            status["lastState"] = state_of(previous);
        }
        if let Some(waiting) = view.waiting {
            // Back-off after an exit: the exit becomes lastState, the state waits.
            status["lastState"] = state_of(latest);
            status["state"] =
                json!({"waiting": {"reason": waiting.reason, "message": waiting.message}});
        }
    } else if let Some(waiting) = view.waiting {
        status["state"] =
            json!({"waiting": {"reason": waiting.reason, "message": waiting.message}});
    }
    status
}

/// Upstream's `getPhase` over the container statuses.
fn phase(pod: &Pod, initialized: bool, statuses: &[Value], init_failed: bool) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if init_failed && policy == "Never" {
        return "Failed";
    }
    if !initialized {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = &s["state"];
        if state.get("running").is_some() {
            running += 1;
        } else if let Some(t) = state.get("terminated") {
            stopped += 1;
            if t["exitCode"] == 0 {
                succeeded += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            stopped += 1;
            if s["lastState"]["terminated"]["exitCode"] == 0 {
                succeeded += 1;
            }
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            "Always" => "Running",
            "OnFailure" if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ if stopped == succeeded => "Succeeded",
            _ => "Failed",
        };
    }
    "Pending"
}

fn condition(
    previous: Option<&Value>,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = previous
        .and_then(|s| s["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == kind));
    let transition = old
        .filter(|c| c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut c = json!({
        "type": kind,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    });
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}

/// The pod's whole status.
pub fn pod_status(inputs: &Inputs<'_>) -> Value {
    let pod = inputs.pod;
    let spec = pod.spec.as_ref();
    let previous = pod
        .status
        .as_ref()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    let init_statuses: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            container_status(
                c,
                inputs
                    .init
                    .get(&c.name)
                    .unwrap_or(&ContainerView::default()),
            )
        })
        .collect();
    let statuses: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
        .iter()
        .map(|c| {
            container_status(
                c,
                inputs
                    .regular
                    .get(&c.name)
                    .unwrap_or(&ContainerView::default()),
            )
        })
        .collect();
    let init_failed = init_statuses.iter().any(|s| {
        s["state"]["terminated"]["exitCode"]
            .as_i64()
            .is_some_and(|c| c != 0)
    });
    let phase = phase(pod, inputs.initialized, &statuses, init_failed);
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions = vec![
        condition(
            previous.as_ref(),
            "PodReadyToStartContainers",
            inputs.sandbox_ready && !terminal,
            None,
            inputs.now,
        ),
        condition(
            previous.as_ref(),
            "Initialized",
            inputs.initialized,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            inputs.now,
        ),
        condition(
            previous.as_ref(),
            "Ready",
            all_ready,
            Some(not_ready_reason),
            inputs.now,
        ),
        condition(
            previous.as_ref(),
            "ContainersReady",
            all_ready,
            Some(not_ready_reason),
            inputs.now,
        ),
    ];
    // Explain which containers are not ready, as upstream does.
    if !all_ready {
        let unready: Vec<&str> = statuses
            .iter()
            .filter(|s| s["ready"] != true)
            .filter_map(|s| s["name"].as_str())
            .collect();
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        for c in conditions.iter_mut().skip(2) {
            if !terminal {
                c["message"] = json!(message);
            }
        }
    }
    if !inputs.initialized {
        let pending: Vec<&str> = init_statuses
            .iter()
            .filter(|s| s["state"]["terminated"]["exitCode"] != 0)
            .filter_map(|s| s["name"].as_str())
            .collect();
        conditions[1]["message"] = json!(format!(
            "containers with incomplete status: [{}]",
            pending.join(" ")
        ));
    }
    if let Some(scheduled) = previous
        .as_ref()
        .and_then(|s| s["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
    {
        conditions.push(scheduled.clone());
    } else {
        conditions.push(condition(None, "PodScheduled", true, None, inputs.now));
    }
    let start_time = previous
        .as_ref()
        .and_then(|s| s["startTime"].as_str().map(str::to_string))
        .unwrap_or_else(|| inputs.now.to_string());
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": inputs.host_ip,
        "hostIPs": [{"ip": inputs.host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
        "qosClass": inputs.qos_class,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = Value::Array(init_statuses);
    }
    if let Some(ip) = inputs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use timonel_runtime::native::{ContainerMeta, Exited, Started};

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "app", "image": "busybox"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    fn info(attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("id{attempt}"),
            meta: ContainerMeta {
                container_name: "app".into(),
                attempt,
                image_id: "sha256:abc".into(),
                ..ContainerMeta::default()
            },
            state,
        }
    }

    fn exited(code: i32, oom: bool) -> ContainerState {
        ContainerState::Exited {
            started: Some(Started {
                pid: 1,
                start_ticks: 1,
                started_at: "2026-01-01T00:00:01.5Z".into(),
                ..Default::default()
            }),
            exited: Exited {
                exit_code: code,
                signal: oom.then_some(9),
                oom_killed: oom,
                finished_at: "2026-01-01T00:00:02Z".into(),
                error: None,
            },
        }
    }

    fn status_with(p: &Pod, view: ContainerView<'_>) -> Value {
        let mut regular = BTreeMap::new();
        regular.insert("app".to_string(), view);
        pod_status(&Inputs {
            pod: p,
            init: BTreeMap::new(),
            regular,
            initialized: true,
            sandbox_ready: true,
            host_ip: "127.0.0.1",
            pod_ip: Some("10.42.0.2"),
            now: "2026-01-01T00:00:03Z",
            qos_class: "BestEffort",
        })
    }

    #[test]
    fn running_and_ready() {
        let p = pod("Always");
        let running = info(
            0,
            ContainerState::Running(Started {
                pid: 1,
                start_ticks: 1,
                started_at: "2026-01-01T00:00:01.25Z".into(),
                ..Default::default()
            }),
        );
        let s = status_with(
            &p,
            ContainerView {
                latest: Some(&running),
                ready: true,
                started: true,
                ..ContainerView::default()
            },
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.42.0.2");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["ready"], true);
        assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
        assert_eq!(c["containerID"], "timonel://id0");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert!(
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "PodScheduled")
        );
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = pod("Always");
        let crashed = info(3, exited(1, false));
        let waiting = Waiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 20s".into(),
        };
        let s = status_with(
            &p,
            ContainerView {
                latest: Some(&crashed),
                waiting: Some(&waiting),
                ready: true,
                started: true,
                ..ContainerView::default()
            },
        );
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["lastState"]["terminated"]["reason"], "Error");
        assert_eq!(c["restartCount"], 3);
        assert_eq!(s["phase"], "Running");
    }

    #[test]
    fn terminal_phases_by_policy() {
        let done = info(0, exited(0, false));
        let view = || ContainerView {
            latest: Some(&done),
            ready: true,
            started: true,
            ..ContainerView::default()
        };
        assert_eq!(status_with(&pod("Never"), view())["phase"], "Succeeded");
        assert_eq!(status_with(&pod("OnFailure"), view())["phase"], "Succeeded");
        let failed = info(0, exited(137, true));
        let s = status_with(
            &pod("Never"),
            ContainerView {
                latest: Some(&failed),
                ready: true,
                started: true,
                ..ContainerView::default()
            },
        );
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "OOMKilled"
        );
    }

    #[test]
    fn no_container_yet_is_pending_container_creating() {
        let s = status_with(&pod("Always"), ContainerView::default());
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
    }
}
