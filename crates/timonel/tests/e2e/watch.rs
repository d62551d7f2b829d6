//! `kubectl get -w`: a LIST followed by a watch that streams one-row Tables.

use std::time::Duration;

use super::harness::Session;

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n");
    for (key, value) in data {
        yaml.push_str(&format!("  {key}: \"{value}\"\n"));
    }
    yaml
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Whether the row starts with the cells `expected`.
fn row_is(line: &str, expected: &[&str]) -> bool {
    let cells = cells(line);
    cells.len() >= expected.len() && cells[..expected.len()] == *expected
}

pub fn get_watch_streams_added_modified_deleted(s: &Session) {
    // Created before the watch starts: it must arrive with the initial LIST (as ADDED).
    s.create_stdin(&configmap("watched", &[("a", "1")]));
    let mut watch = s.spawn_kubectl(&["get", "configmaps", "--watch", "--output-watch-events"]);
    let header = watch.expect_line("the header", EVENT_TIMEOUT, |line| {
        cells(line).first() == Some(&"EVENT")
    });
    assert_eq!(cells(&header), ["EVENT", "NAME", "DATA", "AGE"]);
    watch.expect_line("ADDED watched with 1 key", EVENT_TIMEOUT, |line| {
        row_is(line, &["ADDED", "watched", "1"])
    });

    let patched = s.kubectl_ok(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ]);
    assert_eq!(patched, "configmap/watched patched\n");
    watch.expect_line("MODIFIED watched with 2 keys", EVENT_TIMEOUT, |line| {
        row_is(line, &["MODIFIED", "watched", "2"])
    });

    // Created after the watch started: only the watch can report it.
    s.create_stdin(&configmap(
        "latecomer",
        &[("x", "1"), ("y", "2"), ("z", "3")],
    ));
    watch.expect_line("ADDED latecomer with 3 keys", EVENT_TIMEOUT, |line| {
        row_is(line, &["ADDED", "latecomer", "3"])
    });

    let deleted = s.kubectl_ok(&["delete", "configmap", "watched"]);
    assert_eq!(
        deleted,
        format!("configmap \"watched\" deleted from {} namespace\n", s.ns)
    );
    watch.expect_line("DELETED watched", EVENT_TIMEOUT, |line| {
        row_is(line, &["DELETED", "watched", "2"])
    });
}

pub fn get_watch_on_one_object(s: &Session) {
    s.create_stdin(&configmap("solo", &[("k1", "1")]));
    s.create_stdin(&configmap("bystander", &[("k1", "1")]));
    // `get NAME -w` prints the object, then watches with fieldSelector=metadata.name=NAME from
    // resourceVersion 0 and hides the synthetic ADDED that starts such a watch.
    let mut watch = s.spawn_kubectl(&["get", "configmap", "solo", "--watch"]);
    let header = watch.expect_line("the header", EVENT_TIMEOUT, |line| {
        cells(line).first() == Some(&"NAME")
    });
    assert_eq!(cells(&header), ["NAME", "DATA", "AGE"]);
    watch.expect_line("solo with 1 key", EVENT_TIMEOUT, |line| {
        row_is(line, &["solo", "1"])
    });

    // kubectl may not have opened its watch yet, and a change made before that is folded into
    // the hidden synthetic event: keep changing until a row arrives. The bystander changes
    // first every time; a name-filtered watch must never show it.
    for keys in 2..=20 {
        let bystander_patch = format!(r#"{{"data":{{"k{keys}":"{keys}"}}}}"#);
        s.kubectl_ok(&[
            "patch",
            "configmap",
            "bystander",
            "--type=merge",
            "-p",
            &bystander_patch,
        ]);
        s.kubectl_ok(&[
            "patch",
            "configmap",
            "solo",
            "--type=merge",
            "-p",
            &bystander_patch,
        ]);
        if let Some(line) = watch.next_line(Duration::from_secs(2)) {
            assert!(
                row_is(&line, &["solo", &keys.to_string()]),
                "unexpected row {line:?}"
            );
            return;
        }
    }
    panic!("`kubectl get configmap solo --watch` printed no change after 19 updates");
}
