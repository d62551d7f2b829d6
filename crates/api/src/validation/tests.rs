use super::*;
use crate::defaults::apply_defaults;
use serde_json::json;

fn check(group: &str, kind: &str, mut obj: Value) -> Vec<FieldError> {
    apply_defaults(group, "v1", kind, &mut obj);
    validate(group, kind, &obj, None)
}

fn check_update(group: &str, kind: &str, mut old: Value, mut new: Value) -> Vec<FieldError> {
    apply_defaults(group, "v1", kind, &mut old);
    apply_defaults(group, "v1", kind, &mut new);
    validate(group, kind, &new, Some(&old))
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(format_field_error).collect()
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "A", "value": "1"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

#[test]
fn valid_objects_have_no_errors() {
    assert_eq!(lines(&check("", "Pod", pod())), Vec::<String>::new());
    assert_eq!(
        lines(&check("apps", "Deployment", deployment())),
        Vec::<String>::new()
    );
    let mut sts = deployment();
    sts["kind"] = json!("StatefulSet");
    assert_eq!(
        lines(&check("apps", "StatefulSet", sts.clone())),
        Vec::<String>::new()
    );
    // Containers may mount a volumeClaimTemplate by name.
    let mut with_claims = sts.clone();
    with_claims["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    with_claims["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    assert_eq!(
        lines(&check("apps", "StatefulSet", with_claims.clone())),
        Vec::<String>::new()
    );
    with_claims["kind"] = json!("Deployment");
    assert_eq!(
        lines(&check("apps", "Deployment", with_claims)),
        ["spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\""]
    );
    assert_eq!(
        lines(&check("apps", "DaemonSet", sts.clone())),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&check("apps", "ReplicaSet", sts)),
        Vec::<String>::new()
    );
    let svc = json!({"metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "name": "http"}]}});
    assert_eq!(lines(&check("", "Service", svc)), Vec::<String>::new());
    let ns = json!({"metadata": {"name": "dev"}});
    assert_eq!(lines(&check("", "Namespace", ns)), Vec::<String>::new());
    let cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a.b": "x", "C_D": "y"}});
    assert_eq!(lines(&check("", "ConfigMap", cm)), Vec::<String>::new());
    let cj = json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    assert_eq!(lines(&check("batch", "CronJob", cj)), Vec::<String>::new());
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com",
        "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true}]}});
    assert_eq!(
        lines(&check(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            crd
        )),
        Vec::<String>::new()
    );
    let lease = json!({"metadata": {"name": "l", "namespace": "kube-system"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    assert_eq!(
        lines(&check("coordination.k8s.io", "Lease", lease)),
        Vec::<String>::new()
    );
    let rb = json!({"metadata": {"name": "system:rb", "namespace": "d"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"}]});
    assert_eq!(
        lines(&check("rbac.authorization.k8s.io", "RoleBinding", rb)),
        Vec::<String>::new()
    );
}

#[test]
fn object_meta_rules() {
    let mut p = pod();
    p["metadata"]["name"] = json!("Foo_Bar");
    assert_eq!(
        lines(&check("", "Pod", p)),
        vec![
            "metadata.name: Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    );
    let mut p = pod();
    p["metadata"].as_object_mut().unwrap().remove("name");
    assert_eq!(
        lines(&check("", "Pod", p.clone())),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    p["metadata"]["generateName"] = json!("web-");
    assert!(check("", "Pod", p).is_empty());
    let mut p = pod();
    p["metadata"].as_object_mut().unwrap().remove("namespace");
    assert_eq!(
        lines(&check("", "Pod", p)),
        vec!["metadata.namespace: Required value"]
    );
    let ns = json!({"metadata": {"name": "a.b", "namespace": "x"}});
    let errs = check("", "Namespace", ns);
    assert_eq!(errs[0].field, "metadata.name");
    assert!(errs[0].message.contains("RFC 1123 label"));
    assert_eq!(
        format_field_error(&errs[1]),
        "metadata.namespace: Forbidden: not allowed on this type"
    );
    let mut p = pod();
    p["metadata"]["labels"] = json!({"bad key": "v", "ok": "bad value!"});
    let errs = check("", "Pod", p);
    assert_eq!(errs.len(), 2);
    assert!(
        errs[0]
            .message
            .starts_with("Invalid value: \"bad key\": name part must consist of")
    );
    assert!(
        errs[1]
            .message
            .starts_with("Invalid value: \"bad value!\": a valid label must be")
    );
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"big": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)});
    assert_eq!(
        lines(&check("", "Pod", p)),
        vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
    let role = json!({"metadata": {"name": "a/b", "namespace": "d"}});
    assert_eq!(
        lines(&check("rbac.authorization.k8s.io", "Role", role)),
        vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
    );
    let svc =
        json!({"metadata": {"name": "1abc", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}});
    assert!(
        check("", "Service", svc)[0]
            .message
            .contains("DNS-1035 label")
    );
    let meta_only = validate_object_meta(
        &json!({"metadata": {"name": "x"}}),
        true,
        NameRule::Dns1123Subdomain,
    );
    assert_eq!(
        lines(&meta_only),
        vec!["metadata.namespace: Required value"]
    );
}

#[test]
fn pod_rules() {
    let mut p = pod();
    p["spec"]["containers"] = json!([]);
    assert_eq!(
        lines(&check("", "Pod", p)),
        vec!["spec.containers: Required value"]
    );
    let mut p = pod();
    let c = p["spec"]["containers"][0].clone();
    p["spec"]["containers"] = json!([c.clone(), c]);
    assert_eq!(
        lines(&check("", "Pod", p)),
        vec!["spec.containers[1].name: Duplicate value: \"c\""]
    );
    let mut p = pod();
    let c = &mut p["spec"]["containers"][0];
    c["image"] = json!("");
    c["imagePullPolicy"] = json!("Sometimes");
    c["ports"][0]["containerPort"] = json!(70000);
    c["ports"][0]["protocol"] = json!("HTTP");
    c["env"][0]["name"] = json!("1A");
    c["resources"]["requests"]["cpu"] = json!("2");
    c["volumeMounts"][0]["name"] = json!("missing");
    p["spec"]["restartPolicy"] = json!("Sometimes");
    p["spec"]["dnsPolicy"] = json!("Weird");
    p["spec"]["volumes"] = json!([{"name": "a"}, {"name": "a"}]);
    let got = lines(&check("", "Pod", p));
    let expected = [
        "spec.volumes[1].name: Duplicate value: \"a\"",
        "spec.containers[0].image: Required value",
        "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        "spec.dnsPolicy: Unsupported value: \"Weird\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
    ];
    for line in expected {
        assert!(
            got.contains(&line.to_string()),
            "missing {line}\n got {got:#?}"
        );
    }
    assert!(got.iter().any(|l| l.starts_with(
        "spec.containers[0].env[0].name: Invalid value: \"1A\": a valid environment variable name"
    )));
    let mut p = pod();
    p["spec"]["containers"][0]["name"] = json!("Bad_Name");
    assert!(lines(&check("", "Pod", p))[0].starts_with(
        "spec.containers[0].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"
    ));
}

#[test]
fn pod_update_rules() {
    let mut new = pod();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    new["spec"]["activeDeadlineSeconds"] = json!(30);
    new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    assert!(check_update("", "Pod", pod(), new).is_empty());
    let mut new = pod();
    new["spec"]["containers"][0]["env"] = json!([]);
    let errs = check_update("", "Pod", pod(), new);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec");
    assert_eq!(errs[0].reason, ErrorType::FieldValueForbidden);
    assert!(errs[0].message.starts_with(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));
    let mut old = pod();
    old["metadata"]["uid"] = json!("u1");
    let mut new = pod();
    new["metadata"]["uid"] = json!("u2");
    assert_eq!(
        lines(&check_update("", "Pod", old, new)),
        vec!["metadata.uid: Invalid value: \"u2\": field is immutable"]
    );
}

#[test]
fn workload_rules() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    let errs = check("apps", "Deployment", d);
    assert_eq!(
        lines(&errs),
        vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(
        invalid_message("Deployment.apps", "web", &errs),
        "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    d["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}});
    let errs = check("apps", "Deployment", d);
    assert_eq!(
        lines(&errs),
        vec![
            "spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
        ]
    );
    assert!(
        invalid_message("Deployment.apps", "web", &errs)
            .starts_with("Deployment.apps \"web\" is invalid: [spec.template")
    );
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        lines(&check("apps", "Deployment", d)),
        vec!["spec.selector: Required value"]
    );
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "Sometimes"});
    assert_eq!(
        lines(&check("apps", "Deployment", d)),
        vec![
            "spec.strategy.type: Unsupported value: \"Sometimes\": supported values: \"Recreate\", \"RollingUpdate\""
        ]
    );
    let mut changed = deployment();
    changed["spec"]["selector"] = json!({"matchLabels": {"app": "web", "x": "y"}});
    changed["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
    assert_eq!(
        lines(&check_update("apps", "Deployment", deployment(), changed)),
        vec![
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"x\":\"y\"}}: field is immutable"
        ]
    );
    let mut sts = deployment();
    sts["spec"]["serviceName"] = json!("a");
    let mut sts_new = sts.clone();
    sts_new["spec"]["replicas"] = json!(3);
    assert!(check_update("apps", "StatefulSet", sts.clone(), sts_new.clone()).is_empty());
    sts_new["spec"]["serviceName"] = json!("b");
    let errs = check_update("apps", "StatefulSet", sts, sts_new);
    assert_eq!(errs[0].field, "spec");
    assert!(
        errs[0]
            .message
            .starts_with("Forbidden: updates to statefulset spec for fields other than")
    );
    let mut deploy = deployment();
    deploy["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    assert_eq!(
        lines(&check("apps", "Deployment", deploy)),
        vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        ]
    );
}

fn job() -> Value {
    let mut job = json!({"metadata": {"name": "pi", "namespace": "d"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "perl"}]}}}});
    crate::defaults::job_selector_defaults(&mut job, "uid-1");
    job
}

#[test]
fn job_and_cron_job_rules() {
    assert_eq!(lines(&check("batch", "Job", job())), Vec::<String>::new());
    let mut j = job();
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    j["spec"]["parallelism"] = json!(-2);
    assert_eq!(
        lines(&check("batch", "Job", j)),
        vec![
            "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ]
    );
    let mut new = job();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
    let errs = check_update("batch", "Job", job(), new);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].field, "spec.template");
    assert!(errs[0].message.ends_with("field is immutable"));
    let cj = json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": "61 * * * *",
        "concurrencyPolicy": "Sometimes",
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}}}});
    assert_eq!(
        lines(&check("batch", "CronJob", cj)),
        vec![
            "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
        ]
    );
    let zoned = |zone: &str| {
        json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": "@daily",
            "timeZone": zone, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}}}}})
    };
    assert_eq!(
        lines(&check("batch", "CronJob", zoned("Europe/Lisbon"))),
        Vec::<String>::new()
    );
    assert_eq!(
        lines(&check("batch", "CronJob", zoned("Moon/Base"))),
        vec!["spec.timeZone: Invalid value: \"Moon/Base\": unknown time zone Moon/Base"]
    );
}

#[test]
fn service_rules() {
    let svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {}});
    assert_eq!(
        lines(&check("", "Service", svc)),
        vec!["spec.ports: Required value"]
    );
    let headless =
        json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "None"}});
    assert!(check("", "Service", headless).is_empty());
    let external = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "example.com"}});
    assert!(check("", "Service", external).is_empty());
    let svc = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"type": "Magic",
        "ports": [{"port": 0, "name": "a"}, {"port": 80, "name": "a", "nodePort": 30000}]}});
    assert_eq!(
        lines(&check("", "Service", svc)),
        vec![
            "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[1].name: Duplicate value: \"a\"",
            "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'Magic'",
        ]
    );
    let old = json!({"metadata": {"name": "s", "namespace": "d"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}});
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.0.0.2");
    assert_eq!(
        lines(&check_update("", "Service", old, new)),
        vec!["spec.clusterIP: Invalid value: \"10.0.0.2\": field is immutable"]
    );
}

#[test]
fn config_map_secret_namespace_rules() {
    let cm = json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x"}});
    let errs = check("", "ConfigMap", cm);
    assert_eq!(errs[0].field, "data[a b]");
    assert!(errs[0].message.starts_with("Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
    let old =
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    assert_eq!(
        lines(&check_update("", "ConfigMap", old.clone(), new)),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
    assert!(check_update("", "ConfigMap", old.clone(), old).is_empty());
    let tls = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}});
    assert_eq!(
        lines(&check("", "Secret", tls)),
        vec!["data[tls.key]: Required value"]
    );
    let ns = json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["foo"]}});
    assert_eq!(
        lines(&check("", "Namespace", ns)),
        vec![
            "spec.finalizers: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified"
        ]
    );
    let old_ns = json!({"metadata": {"name": "a"}});
    let new_ns = json!({"metadata": {"name": "b"}});
    assert_eq!(
        lines(&check_update("", "Namespace", old_ns, new_ns)),
        vec!["metadata.name: Invalid value: \"b\": field is immutable"]
    );
    let pvc = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {}});
    assert_eq!(
        lines(&check("", "PersistentVolumeClaim", pvc)),
        vec![
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value"
        ]
    );
}

#[test]
fn crd_lease_event_node_rules() {
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example",
        "scope": "Global", "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "storage": true}, {"name": "v2", "storage": true}]}});
    assert_eq!(
        lines(&check(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            crd
        )),
        vec![
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
            "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            "metadata.name: Invalid value: \"widgets.example.com\": must be spec.names.plural+\".\"+spec.group",
            "spec.versions: Invalid value: [{\"name\":\"v1\",\"storage\":true},{\"name\":\"v2\",\"storage\":true}]: must have exactly one version marked as storage version",
        ]
    );
    let lease =
        json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}});
    assert_eq!(
        lines(&check("coordination.k8s.io", "Lease", lease)),
        vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]
    );
    let event = json!({"metadata": {"name": "e.1", "namespace": "d"}, "involvedObject": {"namespace": "x"}, "type": "Bad"});
    assert_eq!(
        lines(&check("", "Event", event)),
        vec![
            "involvedObject.namespace: Invalid value: \"x\": does not match event.namespace",
            "type: Unsupported value: \"Bad\": supported values: \"Normal\", \"Warning\"",
        ]
    );
    let node =
        json!({"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "Never"}]}});
    assert_eq!(
        lines(&check("", "Node", node)),
        vec![
            "spec.taints[0].effect: Unsupported value: \"Never\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
        ]
    );
}

#[test]
fn wrong_types_are_reported_not_panicking() {
    let p = json!({"metadata": {"name": 5, "namespace": "d"}, "spec": {"containers": "x"}});
    let errs = validate("", "Pod", &p, None);
    assert_eq!(errs[0].reason, ErrorType::FieldValueTypeInvalid);
    assert_eq!(errs[0].field, "metadata.name");
    assert!(errs.iter().any(|e| e.field == "spec.containers"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            prop::sample::select(vec![
                "",
                "a",
                "Always",
                "v1",
                "-",
                "x/y",
                "1Gi",
                "80",
                "None",
                "*/5 * * * *"
            ])
            .prop_map(|s| json!(s)),
        ];
        let keys = prop::sample::select(vec![
            "metadata",
            "name",
            "namespace",
            "labels",
            "annotations",
            "spec",
            "containers",
            "image",
            "ports",
            "port",
            "targetPort",
            "selector",
            "matchLabels",
            "template",
            "replicas",
            "strategy",
            "rollingUpdate",
            "maxSurge",
            "volumes",
            "volumeMounts",
            "resources",
            "limits",
            "requests",
            "schedule",
            "jobTemplate",
            "data",
            "type",
            "versions",
            "names",
            "env",
            "status",
            "uid",
            "immutable",
            "updateStrategy",
        ]);
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    const KINDS: &[(&str, &str)] = &[
        ("", "Pod"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "Event"),
        ("", "PersistentVolumeClaim"),
        ("coordination.k8s.io", "Lease"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
        ("rbac.authorization.k8s.io", "Role"),
        ("", "ReplicationController"),
        ("", "LimitRange"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("policy", "PodDisruptionBudget"),
        ("networking.k8s.io", "Ingress"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
        ("", "PersistentVolume"),
        ("", "PodTemplate"),
        ("", "Endpoints"),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn validate_and_default_never_panic(obj in arb_json(), old in arb_json(), kind_index in 0..KINDS.len()) {
            let (group, kind) = KINDS[kind_index];
            let mut defaulted = obj.clone();
            apply_defaults(group, "v1", kind, &mut defaulted);
            crate::defaults::job_selector_defaults(&mut defaulted, "u");
            let _ = validate(group, kind, &obj, Some(&old));
            let _ = validate(group, kind, &defaulted, None);
            let mut wrapped = json!({"spec": {"template": obj.clone()}, "metadata": obj});
            apply_defaults(group, "v2", kind, &mut wrapped);
            let _ = validate(group, kind, &wrapped, None);
            let now = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
            let objects = [obj.clone(), defaulted.clone(), wrapped.clone()];
            let _ = crate::table::table(group, kind, &objects, now, crate::table::IncludeObject::Object, true);
            let _ = crate::table::custom_resource_table(&objects, &[json!({"name": "X", "type": "date", "jsonPath": ".metadata.name"})], now, crate::table::IncludeObject::None, true);
        }

        #[test]
        fn selector_parsing_never_panics(text in "[a-z=!,() /.\\-]{0,24}") {
            if let Ok(selector) = crate::selectors::LabelSelector::parse(&text) {
                // What parses must print back to an equivalent selector.
                let reparsed = crate::selectors::LabelSelector::parse(&selector.to_string());
                prop_assert!(reparsed.is_ok(), "{} -> {}", text, selector);
            }
            if let Ok(selector) = crate::selectors::FieldSelector::parse(&text) {
                let _ = selector.matches(&json!({"kind": "Pod", "apiVersion": "v1"}));
            }
        }
    }
}

#[test]
fn smaller_kind_rules() {
    let hpa = json!({"metadata": {"name": "h", "namespace": "d"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 5, "maxReplicas": 2}});
    assert_eq!(
        lines(&validate(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &hpa,
            None
        )),
        vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
    );
    let pdb = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "maxUnavailable": "150%"}});
    let errs = lines(&validate("policy", "PodDisruptionBudget", &pdb, None));
    assert_eq!(errs.len(), 2);
    assert!(errs[0].ends_with("minAvailable and maxUnavailable cannot be both set"));
    assert_eq!(
        errs[1],
        "spec.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
    );
    let ingress = json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "a.example.com",
        "http": {"paths": [{"path": "api", "pathType": "Prefix", "backend": {"service": {"name": "s", "port": {"number": 80}}}},
                           {"path": "/", "backend": {"service": {"name": "s", "port": {"number": 80}}}}]}}]}});
    assert_eq!(
        lines(&validate("networking.k8s.io", "Ingress", &ingress, None)),
        vec![
            "spec.rules[0].http.paths[0].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified",
        ]
    );
    let pc = json!({"metadata": {"name": "high"}, "value": 2_000_000_000i64});
    assert_eq!(
        lines(&validate("scheduling.k8s.io", "PriorityClass", &pc, None)),
        vec!["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
    );
    let old_sc = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/a"});
    let new_sc = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/b"});
    assert_eq!(
        lines(&validate(
            "storage.k8s.io",
            "StorageClass",
            &new_sc,
            Some(&old_sc)
        )),
        vec!["provisioner: Forbidden: updates to provisioner are forbidden."]
    );
    let pv = json!({"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}});
    assert_eq!(
        lines(&validate("", "PersistentVolume", &pv, None)),
        vec!["spec: Required value: must specify a volume type"]
    );
    let np =
        json!({"metadata": {"name": "n", "namespace": "d"}, "spec": {"policyTypes": ["Sideways"]}});
    assert_eq!(
        lines(&validate("networking.k8s.io", "NetworkPolicy", &np, None)),
        vec![
            "spec.policyTypes[0]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\""
        ]
    );
}
