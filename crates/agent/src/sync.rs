//! What a pod's containers should do next: kubelet's `computePodActions`, as a pure function
//! of the pod spec, the containers observed on the node, restart back-off and probe results.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};
use timonel_runtime::native::{ContainerInfo, ContainerState};

/// CrashLoopBackOff: 10 s doubling to 5 min, forgotten after 10 min of running.
pub const BACKOFF_INITIAL_SECS: i64 = 10;
pub const BACKOFF_MAX_SECS: i64 = 300;
pub const BACKOFF_RESET_SECS: i64 = 600;

/// Per-container restart back-off, as kubelet's `flowcontrol.Backoff`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Seconds to wait after the last exit before the next start; 0 = none yet.
    pub delay_secs: i64,
    /// The delay charged to the latest exit (what its CrashLoopBackOff waits).
    pub applied_secs: i64,
}

impl Backoff {
    /// The delay to wait after an exit at `finished`, given how long the container ran.
    pub fn next(&mut self, ran_secs: i64) -> i64 {
        if ran_secs >= BACKOFF_RESET_SECS {
            self.delay_secs = 0;
        }
        let current = self.delay_secs;
        self.applied_secs = current;
        self.delay_secs = if current == 0 {
            BACKOFF_INITIAL_SECS
        } else {
            (current * 2).min(BACKOFF_MAX_SECS)
        };
        current
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One step for the worker to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (a new attempt of) this container.
    Start {
        name: String,
        init: bool,
        attempt: u32,
    },
    /// Stop a running container (liveness failure, or a restartable init container of a pod
    /// that finished).
    Kill { id: String, reason: String },
}

/// Why a container is waiting, for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Containers held back, with the reason their status shows.
    pub waiting: BTreeMap<String, Waiting>,
    /// Seconds until the earliest back-off ends (to wake up then).
    pub wake_in_secs: Option<i64>,
    /// True when every init container has completed (or started, for sidecars).
    pub initialized: bool,
}

/// Inputs the planner needs besides the pod.
pub struct Context<'a> {
    /// The latest attempt of each container by name.
    pub latest: &'a BTreeMap<String, ContainerInfo>,
    /// Back-off state by container name (mutated when a restart is scheduled).
    pub backoff: &'a mut BTreeMap<String, (Backoff, Option<DateTime<Utc>>)>,
    /// Containers whose liveness (or startup) probe failed past its threshold, by id.
    pub unhealthy: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Whether a container that exited with `code` restarts under `policy`.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Always" => true,
        "OnFailure" => code != 0,
        _ => false,
    }
}

fn ran_secs(info: &ContainerInfo) -> i64 {
    match &info.state {
        ContainerState::Exited {
            started: Some(s),
            exited,
        } => match (parse_time(&s.started_at), parse_time(&exited.finished_at)) {
            (Some(a), Some(b)) => (b - a).num_seconds(),
            _ => 0,
        },
        _ => 0,
    }
}

fn finished_at(info: &ContainerInfo) -> Option<DateTime<Utc>> {
    match &info.state {
        ContainerState::Exited { exited, .. } => parse_time(&exited.finished_at),
        _ => None,
    }
}

/// Decides whether an exited container may start again now. Returns `Ok(())` to restart, or
/// the waiting reason and the seconds left.
fn restart_gate(
    name: &str,
    pod: &Pod,
    info: &ContainerInfo,
    ctx: &mut Context<'_>,
) -> Result<(), (Waiting, i64)> {
    let finished = finished_at(info).unwrap_or(ctx.now);
    let entry = ctx.backoff.entry(name.to_string()).or_default();
    // The back-off is charged once per exit: remember which exit it was charged for.
    if entry.1 != Some(finished) {
        let delay = entry.0.next(ran_secs(info));
        entry.1 = Some(finished);
        if delay == 0 {
            return Ok(());
        }
    }
    let delay = entry.0.applied_secs;
    let ends = finished + chrono::Duration::seconds(delay);
    if ctx.now >= ends {
        return Ok(());
    }
    let meta = pod.metadata.clone();
    let message = format!(
        "back-off {}s restarting failed container={} pod={}_{}({})",
        delay,
        name,
        meta.name.unwrap_or_default(),
        meta.namespace.unwrap_or_default(),
        meta.uid.unwrap_or_default()
    );
    let left = ((ends - ctx.now).num_milliseconds().max(0) + 999) / 1000;
    Err((
        Waiting {
            reason: "CrashLoopBackOff".into(),
            message,
        },
        left,
    ))
}

/// Plans the next steps for a pod that is not being deleted.
pub fn plan(pod: &Pod, ctx: &mut Context<'_>) -> Plan {
    let mut plan = Plan::default();
    let Some(spec) = pod.spec.as_ref() else {
        return plan;
    };
    let policy = restart_policy(pod).to_string();
    let wake = |plan: &mut Plan, secs: i64| {
        plan.wake_in_secs = Some(plan.wake_in_secs.map_or(secs, |w| w.min(secs)));
    };

    // Init containers, in order: each must complete (sidecars: start) before the next.
    let mut initialized = true;
    for container in spec.init_containers.iter().flatten() {
        let name = &container.name;
        let sidecar = is_sidecar(container);
        match ctx.latest.get(name) {
            None => {
                plan.actions.push(Action::Start {
                    name: name.clone(),
                    init: true,
                    attempt: 0,
                });
                initialized = false;
                break;
            }
            Some(info) => match &info.state {
                ContainerState::Created => {
                    initialized = false;
                    break;
                }
                ContainerState::Running(_) => {
                    if let Some(reason) = ctx.unhealthy.get(&info.id) {
                        plan.actions.push(Action::Kill {
                            id: info.id.clone(),
                            reason: reason.clone(),
                        });
                    }
                    if sidecar {
                        continue;
                    }
                    initialized = false;
                    break;
                }
                ContainerState::Exited { exited, .. } => {
                    if exited.exit_code == 0 && !sidecar {
                        continue;
                    }
                    // A failed init container restarts unless the pod never restarts
                    // (then the pod fails); sidecars always restart.
                    let restarts = sidecar || policy != "Never";
                    if restarts {
                        let name = name.clone();
                        match restart_gate(&name, pod, info, ctx) {
                            Ok(()) => plan.actions.push(Action::Start {
                                name: name.clone(),
                                init: true,
                                attempt: info.meta.attempt + 1,
                            }),
                            Err((waiting, left)) => {
                                plan.waiting.insert(name, waiting);
                                wake(&mut plan, left);
                            }
                        }
                    }
                    if sidecar {
                        continue;
                    }
                    initialized = false;
                    break;
                }
            },
        }
    }
    plan.initialized = initialized;
    if !initialized {
        return plan;
    }

    for container in &spec.containers {
        let name = &container.name;
        match ctx.latest.get(name) {
            None => plan.actions.push(Action::Start {
                name: name.clone(),
                init: false,
                attempt: 0,
            }),
            Some(info) => match &info.state {
                ContainerState::Created => {}
                ContainerState::Running(_) => {
                    if let Some(reason) = ctx.unhealthy.get(&info.id) {
                        plan.actions.push(Action::Kill {
                            id: info.id.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                ContainerState::Exited { exited, .. } => {
                    if !should_restart(&policy, exited.exit_code) {
                        continue;
                    }
                    let name = name.clone();
                    match restart_gate(&name, pod, info, ctx) {
                        Ok(()) => plan.actions.push(Action::Start {
                            name,
                            init: false,
                            attempt: info.meta.attempt + 1,
                        }),
                        Err((waiting, left)) => {
                            plan.waiting.insert(name, waiting);
                            wake(&mut plan, left);
                        }
                    }
                }
            },
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use timonel_runtime::native::{ContainerMeta, Exited, Started};

    fn pod(policy: &str, init: &[&str], containers: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {
                "restartPolicy": policy,
                "initContainers": init.iter().map(|n| serde_json::json!({"name": n, "image": "busybox"})).collect::<Vec<_>>(),
                "containers": containers.iter().map(|n| serde_json::json!({"name": n, "image": "busybox"})).collect::<Vec<_>>(),
            }
        }))
        .unwrap()
    }

    fn info(name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{attempt}"),
            meta: ContainerMeta {
                container_name: name.into(),
                attempt,
                ..ContainerMeta::default()
            },
            state,
        }
    }

    fn exited(code: i32, started: &str, finished: &str) -> ContainerState {
        ContainerState::Exited {
            started: Some(Started {
                pid: 1,
                start_ticks: 0,
                started_at: started.into(),
                ..Default::default()
            }),
            exited: Exited {
                exit_code: code,
                signal: None,
                oom_killed: false,
                finished_at: finished.into(),
                error: None,
            },
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running(Started {
            pid: 1,
            start_ticks: 0,
            started_at: "2026-01-01T00:00:00Z".into(),
            ..Default::default()
        })
    }

    fn at(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    fn run(
        pod: &Pod,
        latest: &BTreeMap<String, ContainerInfo>,
        backoff: &mut BTreeMap<String, (Backoff, Option<DateTime<Utc>>)>,
        now: &str,
    ) -> Plan {
        let unhealthy = BTreeMap::new();
        plan(
            pod,
            &mut Context {
                latest,
                backoff,
                unhealthy: &unhealthy,
                now: at(now),
            },
        )
    }

    #[test]
    fn init_containers_run_one_at_a_time_before_the_app() {
        let p = pod("Always", &["a", "b"], &["app"]);
        let mut backoff = BTreeMap::new();
        let mut latest = BTreeMap::new();
        let plan1 = run(&p, &latest, &mut backoff, "2026-01-01T00:00:00Z");
        assert_eq!(
            plan1.actions,
            [Action::Start {
                name: "a".into(),
                init: true,
                attempt: 0
            }]
        );
        assert!(!plan1.initialized);
        latest.insert("a".into(), info("a", 0, running()));
        assert!(
            run(&p, &latest, &mut backoff, "2026-01-01T00:00:01Z")
                .actions
                .is_empty()
        );
        latest.insert(
            "a".into(),
            info(
                "a",
                0,
                exited(0, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"),
            ),
        );
        let plan2 = run(&p, &latest, &mut backoff, "2026-01-01T00:00:01Z");
        assert_eq!(
            plan2.actions,
            [Action::Start {
                name: "b".into(),
                init: true,
                attempt: 0
            }]
        );
        latest.insert(
            "b".into(),
            info(
                "b",
                0,
                exited(0, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
            ),
        );
        let plan3 = run(&p, &latest, &mut backoff, "2026-01-01T00:00:02Z");
        assert!(plan3.initialized);
        assert_eq!(
            plan3.actions,
            [Action::Start {
                name: "app".into(),
                init: false,
                attempt: 0
            }]
        );
    }

    #[test]
    fn crash_loop_restarts_at_once_then_backs_off_doubling() {
        let p = pod("Always", &[], &["app"]);
        let mut backoff = BTreeMap::new();
        let mut latest = BTreeMap::new();
        // First exit: restart at once.
        latest.insert(
            "app".into(),
            info(
                "app",
                0,
                exited(1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"),
            ),
        );
        let first = run(&p, &latest, &mut backoff, "2026-01-01T00:00:01Z");
        assert_eq!(
            first.actions,
            [Action::Start {
                name: "app".into(),
                init: false,
                attempt: 1
            }]
        );
        // Second exit: 10 s back-off.
        latest.insert(
            "app".into(),
            info(
                "app",
                1,
                exited(1, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
            ),
        );
        let second = run(&p, &latest, &mut backoff, "2026-01-01T00:00:03Z");
        assert!(second.actions.is_empty());
        assert_eq!(second.waiting["app"].reason, "CrashLoopBackOff");
        assert!(
            second.waiting["app"]
                .message
                .starts_with("back-off 10s restarting failed container=app pod=p_default(u1)")
        );
        assert_eq!(second.wake_in_secs, Some(9));
        let later = run(&p, &latest, &mut backoff, "2026-01-01T00:00:12Z");
        assert_eq!(later.actions.len(), 1);
        // Third exit: 20 s.
        latest.insert(
            "app".into(),
            info(
                "app",
                2,
                exited(1, "2026-01-01T00:00:12Z", "2026-01-01T00:00:13Z"),
            ),
        );
        let third = run(&p, &latest, &mut backoff, "2026-01-01T00:00:14Z");
        assert!(third.waiting["app"].message.starts_with("back-off 20s"));
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 2));
        let p = pod("Never", &[], &["app"]);
        let mut latest = BTreeMap::new();
        latest.insert(
            "app".into(),
            info(
                "app",
                0,
                exited(1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"),
            ),
        );
        let plan = run(&p, &latest, &mut BTreeMap::new(), "2026-01-01T00:00:05Z");
        assert!(plan.actions.is_empty());
        assert!(plan.waiting.is_empty());
    }

    #[test]
    fn unhealthy_running_container_is_killed() {
        let p = pod("Always", &[], &["app"]);
        let mut latest = BTreeMap::new();
        latest.insert("app".into(), info("app", 0, running()));
        let mut unhealthy = BTreeMap::new();
        unhealthy.insert("app-0".to_string(), "Liveness probe failed".to_string());
        let mut backoff = BTreeMap::new();
        let plan = plan(
            &p,
            &mut Context {
                latest: &latest,
                backoff: &mut backoff,
                unhealthy: &unhealthy,
                now: at("2026-01-01T00:00:05Z"),
            },
        );
        assert_eq!(
            plan.actions,
            [Action::Kill {
                id: "app-0".into(),
                reason: "Liveness probe failed".into()
            }]
        );
    }

    #[test]
    fn the_delay_shown_is_the_one_charged_up_to_the_cap() {
        let mut b = Backoff::default();
        let charged: Vec<i64> = (0..8).map(|_| b.next(1)).collect();
        assert_eq!(charged, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.applied_secs, 300);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut b = Backoff::default();
        assert_eq!(b.next(1), 0);
        assert_eq!(b.delay_secs, 10);
        b.next(1);
        b.next(1);
        assert_eq!(b.delay_secs, 40);
        assert_eq!(b.next(700), 0);
        assert_eq!(b.delay_secs, 10);
    }
}
