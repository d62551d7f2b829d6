//! Jobs, Indexed Jobs, CronJobs and ttlSecondsAfterFinished on simulated nodes, where pods that
//! do not restart succeed after `--run-time-ms`.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::e2e::harness::{Cluster, ClusterConfig, Session, row_where, table};

fn job_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: busybox:1.36
        command: [\"sh\", \"-c\", \"true\"]
"
    )
}

/// Names and phases of the Job's pods.
fn job_pods(s: &Session<'_>, job: &str) -> Vec<(String, String)> {
    let pods = s.get_json(&["pods", "-l", &format!("batch.kubernetes.io/job-name={job}")]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn job_runs_completions_with_bounded_parallelism() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes(
        "sim",
        2,
        &["--start-delay-ms", "100", "--run-time-ms", "1500"],
    );
    let s = cluster.session("job-completions");
    s.create_stdin(&job_yaml("pi", "  completions: 3\n  parallelism: 2\n"));
    // Watch the pods while the Job runs: never more than two unfinished at once.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut most_active = 0;
    s.eventually("three succeeded pods", Duration::from_secs(60), || {
        let pods = job_pods(&s, "pi");
        let active = pods
            .iter()
            .filter(|(_, phase)| phase != "Succeeded" && phase != "Failed")
            .count();
        most_active = most_active.max(active);
        seen.extend(pods.iter().map(|(name, _)| name.clone()));
        let done = pods
            .iter()
            .filter(|(_, phase)| phase == "Succeeded")
            .count();
        if done >= 3 {
            Ok(())
        } else {
            Err(format!("pods: {pods:?}"))
        }
    });
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=60s",
    ]);
    assert!(most_active <= 2, "{most_active} pods ran at once");
    assert_eq!(seen.len(), 3, "pods created: {seen:?}");
    for name in &seen {
        assert!(
            name.starts_with("pi-") && name.len() == "pi-".len() + 5,
            "pod name {name}"
        );
    }
    let job = s.get_json(&["job", "pi"]);
    assert_eq!(job["status"]["succeeded"], 3, "{job:#}");
    assert_eq!(job["status"]["active"].as_i64().unwrap_or(0), 0, "{job:#}");
    assert!(job["status"]["completionTime"].is_string(), "{job:#}");
    let types: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{job:#}");
    // Generated selector and labels, as upstream.
    let uid = job["metadata"]["uid"].as_str().unwrap_or_default();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    for key in ["batch.kubernetes.io/job-name", "job-name"] {
        assert_eq!(job["spec"]["template"]["metadata"]["labels"][key], "pi");
    }
    // Pods are controlled by the Job.
    let pods = s.get_json(&["pods", "-l", "job-name=pi"]);
    for pod in pods["items"].as_array().into_iter().flatten() {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Job");
        assert_eq!(owner["uid"], uid);
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
    let out = s.kubectl_ok(&["get", "jobs"]);
    let rows = table(&out);
    assert_eq!(&rows[0][..3], ["NAME", "STATUS", "COMPLETIONS"], "{out}");
    let row = row_where(&rows, 0, "pi", &out);
    assert_eq!(&row[1..3], ["Complete", "3/3"], "{out}");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pi",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    let created = events
        .split_whitespace()
        .filter(|r| *r == "SuccessfulCreate")
        .count();
    assert_eq!(created, 3, "events: {events}");
    assert!(
        events.split_whitespace().any(|r| r == "Completed"),
        "events: {events}"
    );
}

#[test]
fn indexed_job_completes_every_index() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes(
        "sim",
        2,
        &["--start-delay-ms", "100", "--run-time-ms", "500"],
    );
    let s = cluster.session("job-indexed");
    s.create_stdin(&job_yaml(
        "idx",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
    ));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=60s",
    ]);
    assert_eq!(s.jsonpath("job/idx", "{.status.completedIndexes}"), "0-2");
    assert_eq!(s.jsonpath("job/idx", "{.status.succeeded}"), "3");
    let pods = s.get_json(&["pods", "-l", "job-name=idx"]);
    let mut indexes = BTreeSet::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"],
            index.as_str()
        );
        assert_eq!(pod["spec"]["hostname"], format!("idx-{index}").as_str());
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with(&format!("idx-{index}-")), "{name}");
        indexes.insert(index);
    }
    assert_eq!(
        indexes,
        ["0", "1", "2"].into_iter().map(String::from).collect()
    );
}

#[test]
fn cronjob_fires_on_schedule_and_from_kubectl() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes(
        "sim",
        1,
        &["--start-delay-ms", "100", "--run-time-ms", "500"],
    );
    let s = cluster.session("cronjob");
    // A bad schedule or time zone is refused with the field path.
    let err = s.kubectl_fail(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(err.contains("spec.schedule"), "{err}");
    let err = s.kubectl_stdin_fail(
        &["create", "-f", "-"],
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: badtz
spec:
  schedule: '@daily'
  timeZone: Moon/Base
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
",
    );
    assert!(err.contains("spec.timeZone"), "{err}");

    s.kubectl_ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox:1.36",
        "--schedule=* * * * *",
    ]);
    let cj_uid = s.jsonpath("cronjob/tick", "{.metadata.uid}");
    // The first minute boundary after creation starts a Job.
    let job = s.eventually("a scheduled job", Duration::from_secs(75), || {
        let jobs = s.get_json(&["jobs"]);
        jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(cj_uid.as_str()))
            .cloned()
            .ok_or_else(|| format!("jobs: {jobs}"))
    });
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let minutes: i64 = name
        .strip_prefix("tick-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("job name {name}"));
    let scheduled =
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    let scheduled_at: Timestamp = scheduled
        .parse()
        .unwrap_or_else(|e| panic!("annotation {scheduled:?}: {e}"));
    assert_eq!(scheduled_at.as_second(), minutes * 60);
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{name}"),
        "--timeout=60s",
    ]);
    let last = s.jsonpath("cronjob/tick", "{.status.lastScheduleTime}");
    let last: Timestamp = last.parse().expect("lastScheduleTime");
    assert_eq!(last.as_second(), minutes * 60);
    s.eventually("lastSuccessfulTime", Duration::from_secs(30), || {
        let text = s.jsonpath("cronjob/tick", "{.status.lastSuccessfulTime}");
        if text.is_empty() {
            Err("unset".to_string())
        } else {
            Ok(())
        }
    });
    // A manual run from the CronJob's template.
    s.kubectl_ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=60s",
    ]);
    assert_eq!(
        s.jsonpath("job/manual", "{.metadata.ownerReferences[0].name}"),
        "tick"
    );
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tick",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("SuccessfulCreate"), "events: {events}");
}

#[test]
fn ttl_after_finished_deletes_the_job() {
    let cluster = Cluster::start(ClusterConfig::control_plane());
    let _nodes = cluster.sim_nodes(
        "sim",
        1,
        &["--start-delay-ms", "100", "--run-time-ms", "300"],
    );
    let s = cluster.session("job-ttl");
    s.create_stdin(&job_yaml("brief", "  ttlSecondsAfterFinished: 0\n"));
    s.eventually("the finished job deleted", Duration::from_secs(60), || {
        let out = s.kubectl(&["get", "job", "brief", "-o", "name"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() && stderr.contains("NotFound") {
            Ok(())
        } else {
            Err(format!("job still there: {stderr}"))
        }
    });
    // It finished before it went.
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=brief",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("Completed"), "events: {events}");
    // Its pods go with it.
    s.eventually("its pods deleted", Duration::from_secs(60), || {
        let pods = job_pods(&s, "brief");
        if pods.is_empty() {
            Ok(())
        } else {
            Err(format!("{pods:?}"))
        }
    });
}
