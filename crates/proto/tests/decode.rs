//! Decodes bodies produced by the real k8s-pb prost types and compares with the JSON form.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Value, json};
use timonel_proto::{MAGIC, ProtoError, decode};

/// Wraps `raw` the way client-go does: magic, then runtime.Unknown with empty content fields.
fn envelope_raw(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC.as_slice(), &unknown.encode_to_vec()].concat()
}

fn envelope(api_version: &str, kind: &str, message: &impl Message) -> Vec<u8> {
    envelope_raw(api_version, kind, message.encode_to_vec())
}

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn map<V>(entries: &[(&str, V)]) -> BTreeMap<String, V>
where
    V: Clone,
{
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn meta_named(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        namespace: s(namespace),
        ..Default::default()
    })
}

#[test]
fn secret_with_binary_data() {
    let binary = vec![0u8, 159, 146, 150, 255];
    let secret = core::Secret {
        metadata: Some(meta::ObjectMeta {
            name: s("sh.helm.release.v1.demo.v1"),
            namespace: s("default"),
            labels: map(&[("owner", "helm".to_owned())]),
            ..Default::default()
        }),
        immutable: Some(false),
        data: map(&[("release", binary.clone())]),
        string_data: BTreeMap::new(),
        r#type: s("helm.sh/release.v1"),
    };
    let decoded = decode(&envelope("v1", "Secret", &secret)).unwrap();
    assert_eq!(decoded.api_version, "v1");
    assert_eq!(decoded.kind, "Secret");
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "default", "labels": {"owner": "helm"}},
            "immutable": false,
            "data": {"release": "AJ+Slv8="},
            "type": "helm.sh/release.v1",
        })
    );
    let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(decoded.object).unwrap();
    assert_eq!(typed.data.unwrap()["release"].0, binary);
}

#[test]
fn config_map_with_text_and_binary_data() {
    let config_map = core::ConfigMap {
        metadata: meta_named("settings", "apps"),
        immutable: None,
        data: map(&[("a.conf", "x=1\n".to_owned()), ("empty", String::new())]),
        binary_data: map(&[("blob", vec![1u8, 2, 3])]),
    };
    let decoded = decode(&envelope("v1", "ConfigMap", &config_map)).unwrap();
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "apps"},
            "data": {"a.conf": "x=1\n", "empty": ""},
            "binaryData": {"blob": "AQID"},
        })
    );
}

#[test]
fn namespace_drops_empty_go_strings_but_keeps_set_values() {
    // Go's encoder writes every non-pointer string, so empty ones arrive on the wire.
    let namespace = core::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("team-a"),
            generate_name: s(""),
            namespace: s(""),
            uid: s(""),
            resource_version: s(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            annotations: map(&[("note", String::new())]),
            ..Default::default()
        }),
        spec: Some(core::NamespaceSpec { finalizers: vec![] }),
        status: None,
    };
    let decoded = decode(&envelope("v1", "Namespace", &namespace)).unwrap();
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "generation": 0, "annotations": {"note": ""}},
            "spec": {},
        })
    );
}

fn sample_deployment() -> apps::Deployment {
    let container = core::Container {
        name: s("web"),
        image: s("nginx:1.27"),
        command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        ports: vec![core::ContainerPort {
            name: s("http"),
            container_port: Some(80),
            protocol: s("TCP"),
            ..Default::default()
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            core::EnvVar {
                name: s("LEVEL"),
                value: None,
                value_from: Some(core::EnvVarSource {
                    config_map_key_ref: Some(core::ConfigMapKeySelector {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: s("settings"),
                        }),
                        key: s("level"),
                        optional: Some(true),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: map(&[
                ("cpu", Quantity { string: s("500m") }),
                ("memory", Quantity { string: s("128Mi") }),
            ]),
            requests: map(&[("cpu", Quantity { string: s("100m") })]),
            claims: vec![],
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: Some(IntOrString {
                        r#type: Some(1),
                        int_val: None,
                        str_val: s("http"),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("config"),
            mount_path: s("/etc/nginx/conf.d"),
            read_only: Some(true),
            ..Default::default()
        }],
        ..Default::default()
    };
    apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            labels: map(&[("app", "web".to_owned())]),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_767_323_045),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: map(&[("app", "web".to_owned())]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["frontend".into(), "edge".into()],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: map(&[("app", "web".to_owned())]),
                    ..Default::default()
                }),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    volumes: vec![core::Volume {
                        name: s("config"),
                        volume_source: Some(core::VolumeSource {
                            config_map: Some(core::ConfigMapVolumeSource {
                                local_object_reference: Some(core::LocalObjectReference {
                                    name: s("settings"),
                                }),
                                default_mode: Some(0o644),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    }],
                    termination_grace_period_seconds: Some(30),
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: s(""),
                    }),
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                }),
            }),
            revision_history_limit: Some(10),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn deployment_with_full_pod_spec() {
    let decoded = decode(&envelope("apps/v1", "Deployment", &sample_deployment())).unwrap();
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 0,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "edge"]}],
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}],
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "command": ["nginx", "-g", "daemon off;"],
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level", "optional": true}}},
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "100m"},
                        },
                        "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/nginx/conf.d"}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                    }],
                    "terminationGracePeriodSeconds": 30,
                    "automountServiceAccountToken": false,
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
        },
    });
    assert_eq!(decoded.object, expected);

    // The JSON must also be what k8s-openapi's typed model accepts.
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as Ios;
    let typed: k8s_openapi::api::apps::v1::Deployment =
        serde_json::from_value(decoded.object).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(0));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(rolling.max_surge, Some(Ios::String("25%".into())));
    assert_eq!(rolling.max_unavailable, Some(Ios::Int(1)));
    let pod = spec.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0,
        "128Mi"
    );
    let probe_port = &container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap()
        .port;
    assert_eq!(probe_port, &Ios::String("http".into()));
    assert_eq!(
        pod.volumes.unwrap()[0].config_map.as_ref().unwrap().name,
        "settings"
    );
    let created = typed.metadata.creation_timestamp.unwrap();
    assert_eq!(created.0.as_second(), 1_767_323_045);
}

#[test]
fn delete_options_are_accepted_under_any_group_version() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("1234"),
            resource_version: None,
        }),
        propagation_policy: s("Background"),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let decoded = decode(&envelope(api_version, "DeleteOptions", &options)).unwrap();
        assert_eq!(
            decoded.object,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "1234"},
                "propagationPolicy": "Background",
                "dryRun": ["All"],
            })
        );
    }
}

#[test]
fn self_subject_access_review() {
    use k8s_pb::api::authorization::v1 as authz;
    let review = authz::SelfSubjectAccessReview {
        metadata: Some(meta::ObjectMeta::default()),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("default"),
                verb: s("create"),
                group: s(""),
                resource: s("pods"),
                subresource: s("exec"),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: None,
    };
    let decoded = decode(&envelope(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        &review,
    ))
    .unwrap();
    assert_eq!(
        decoded.object,
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods", "subresource": "exec"}},
        })
    );
    let typed: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview =
        serde_json::from_value(decoded.object).unwrap();
    assert_eq!(
        typed.spec.resource_attributes.unwrap().verb.as_deref(),
        Some("create")
    );
}

#[test]
fn token_request_and_eviction() {
    use k8s_pb::api::authentication::v1 as authn;
    use k8s_pb::api::policy::v1 as policy;
    let request = authn::TokenRequest {
        metadata: None,
        spec: Some(authn::TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc".into()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        status: None,
    };
    let decoded = decode(&envelope(
        "authentication.k8s.io/v1",
        "TokenRequest",
        &request,
    ))
    .unwrap();
    assert_eq!(
        decoded.object["spec"],
        json!({"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600})
    );

    let eviction = policy::Eviction {
        metadata: meta_named("web-0", "default"),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(-1),
            ..Default::default()
        }),
    };
    let decoded = decode(&envelope("policy/v1", "Eviction", &eviction)).unwrap();
    assert_eq!(
        decoded.object["deleteOptions"],
        json!({"gracePeriodSeconds": -1})
    );
}

#[test]
fn micro_time_and_pod_status_times() {
    use k8s_pb::api::events::v1 as events;
    let event = events::Event {
        metadata: meta_named("e1", "default"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_767_323_045),
            nanos: Some(123_456_789),
        }),
        reason: s("Started"),
        ..Default::default()
    };
    let decoded = decode(&envelope("events.k8s.io/v1", "Event", &event)).unwrap();
    assert_eq!(
        decoded.object["eventTime"],
        json!("2026-01-02T03:04:05.123456Z")
    );
}

#[test]
fn custom_resource_definition_schema() {
    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
    let string_prop = ext::JsonSchemaProps {
        r#type: s("string"),
        default: Some(ext::Json {
            raw: Some(br#""blue""#.to_vec()),
        }),
        ..Default::default()
    };
    let schema = ext::JsonSchemaProps {
        r#type: s("object"),
        properties: map(&[("color", string_prop.clone())]),
        required: vec!["color".into()],
        items: None,
        additional_properties: Some(Box::new(ext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let list = ext::JsonSchemaProps {
        r#type: s("array"),
        items: Some(Box::new(ext::JsonSchemaPropsOrArray {
            schema: Some(Box::new(string_prop)),
            j_son_schemas: vec![],
        })),
        ..Default::default()
    };
    let crd = ext::CustomResourceDefinition {
        metadata: Some(meta::ObjectMeta {
            name: s("widgets.example.com"),
            ..Default::default()
        }),
        spec: Some(ext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(ext::CustomResourceDefinitionNames {
                plural: s("widgets"),
                kind: s("Widget"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![ext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(ext::CustomResourceValidation {
                    open_apiv3_schema: Some(ext::JsonSchemaProps {
                        properties: map(&[("spec", schema), ("tags", list)]),
                        ..Default::default()
                    }),
                }),
                subresources: Some(ext::CustomResourceSubresources {
                    status: Some(ext::CustomResourceSubresourceStatus {}),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &crd,
    ))
    .unwrap();
    let version = &decoded.object["spec"]["versions"][0];
    assert_eq!(version["subresources"], json!({"status": {}}));
    assert_eq!(
        version["schema"]["openAPIV3Schema"]["properties"],
        json!({
            "spec": {
                "type": "object",
                "required": ["color"],
                "properties": {"color": {"type": "string", "default": "blue"}},
                "additionalProperties": false,
                "x-kubernetes-preserve-unknown-fields": true,
            },
            "tags": {"type": "array", "items": {"type": "string", "default": "blue"}},
        })
    );
    let typed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_json::from_value(decoded.object).unwrap();
    assert_eq!(typed.spec.names.kind, "Widget");
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = core::ConfigMap {
        metadata: meta_named("cm", "default"),
        ..Default::default()
    }
    .encode_to_vec();
    // Tag 99 as varint, tag 98 length-delimited, tag 97 fixed64, tag 96 fixed32.
    raw.extend_from_slice(&[0x98, 0x06, 0x2a]);
    raw.extend_from_slice(&[0x92, 0x06, 0x02, b'h', b'i']);
    raw.extend_from_slice(&[0x89, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend_from_slice(&[0x85, 0x06, 1, 2, 3, 4]);
    let decoded = decode(&envelope_raw("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(
        decoded.object,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}})
    );
}

#[test]
fn raw_extension_holds_json_or_nested_protobuf() {
    let revision = apps::ControllerRevision {
        metadata: meta_named("web-1", "default"),
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(br#"{"spec":{"replicas":2}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    let decoded = decode(&envelope("apps/v1", "ControllerRevision", &revision)).unwrap();
    assert_eq!(decoded.object["data"], json!({"spec": {"replicas": 2}}));
    assert_eq!(decoded.object["revision"], json!(1));

    let nested = envelope(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta_named("x", "y"),
            ..Default::default()
        },
    );
    let revision = apps::ControllerRevision {
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(nested) }),
        ..Default::default()
    };
    let decoded = decode(&envelope("apps/v1", "ControllerRevision", &revision)).unwrap();
    assert_eq!(decoded.object["data"]["kind"], json!("ConfigMap"));
    assert_eq!(decoded.object["data"]["metadata"]["name"], json!("x"));
}

fn error_of(body: &[u8]) -> ProtoError {
    decode(body).expect_err("body must be rejected")
}

#[test]
fn bad_input_is_reported() {
    assert!(matches!(
        error_of(b"{\"kind\":\"Secret\"}"),
        ProtoError::MissingMagic
    ));
    assert!(matches!(error_of(b"k8s"), ProtoError::MissingMagic));

    let unknown_kind = error_of(&envelope(
        "example.com/v1",
        "Widget",
        &core::ConfigMap::default(),
    ));
    assert!(unknown_kind.is_unknown_kind());
    assert!(unknown_kind.to_string().contains("Widget"));

    let missing_kind = envelope_raw("", "", vec![]);
    assert!(matches!(
        error_of(&missing_kind),
        ProtoError::MissingTypeMeta("apiVersion")
    ));

    // Envelope field 2 claims 100 bytes but only 1 follows.
    assert!(matches!(
        error_of(b"k8s\0\x12\x64\x01"),
        ProtoError::Truncated(_)
    ));
    // A varint whose continuation bit never ends.
    assert!(matches!(
        error_of(b"k8s\0\x12\xff"),
        ProtoError::Truncated(_)
    ));
    assert!(matches!(
        error_of(b"k8s\0\x0a\x02\x08\xff"),
        ProtoError::Truncated(_)
    ));

    // Truncated inside the object: metadata (tag 1) claims 10 bytes, 2 follow.
    let err = error_of(&envelope_raw(
        "v1",
        "ConfigMap",
        vec![0x0a, 0x0a, 0x0a, 0x00],
    ));
    assert!(matches!(err, ProtoError::Truncated(_)), "{err}");

    // metadata.name (string) sent as a varint: reported with the field path.
    let err = error_of(&envelope_raw(
        "v1",
        "ConfigMap",
        vec![0x0a, 0x02, 0x08, 0x01],
    ));
    assert_eq!(
        err.to_string(),
        "field metadata.name: malformed protobuf: field name: expected wire type length-delimited, got varint"
    );

    let mut gzip =
        Unknown::decode(&envelope("v1", "ConfigMap", &core::ConfigMap::default())[4..]).unwrap();
    gzip.content_encoding = s("gzip");
    let body = [MAGIC.as_slice(), &gzip.encode_to_vec()].concat();
    assert!(matches!(
        error_of(&body),
        ProtoError::UnsupportedEncoding(_)
    ));
}

#[test]
fn invalid_embedded_json_is_an_error() {
    let revision = apps::ControllerRevision {
        data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        ..Default::default()
    };
    let err = error_of(&envelope("apps/v1", "ControllerRevision", &revision));
    assert!(
        err.to_string()
            .starts_with("field data: invalid embedded JSON"),
        "{err}"
    );
}

#[test]
fn deep_nesting_is_rejected_not_overflowing() {
    // JSONSchemaProps.not (tag 28) nested far deeper than any real schema.
    let mut schema = Vec::new();
    for _ in 0..5000 {
        let mut outer = vec![0xe2, 0x01];
        prost::encoding::encode_varint(schema.len() as u64, &mut outer);
        outer.extend_from_slice(&schema);
        schema = outer;
    }
    // CRD spec (2) -> versions (7) -> schema (4) -> openAPIV3Schema (1) -> nested bytes.
    let wrap = |tag: u8, inner: Vec<u8>| {
        let mut out = vec![tag];
        prost::encoding::encode_varint(inner.len() as u64, &mut out);
        out.extend_from_slice(&inner);
        out
    };
    let raw = wrap(0x12, wrap(0x3a, wrap(0x22, wrap(0x0a, schema))));
    let err = error_of(&envelope_raw(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        raw,
    ));
    assert!(err.to_string().contains("nested deeper"), "{err}");
}

#[test]
fn packed_and_unpacked_repeated_scalars() {
    // PodSecurityContext.supplementalGroups (tag 4, repeated int64) inside
    // PodSpec.securityContext (tag 14); Go writes it unpacked, other encoders may pack it.
    let unpacked = core::PodSecurityContext {
        supplemental_groups: vec![1000, 2000],
        ..Default::default()
    }
    .encode_to_vec();
    let packed = {
        let mut body = vec![0x22, 0x04];
        body.extend_from_slice(&[0xe8, 0x07, 0xd0, 0x0f]);
        body
    };
    for context in [unpacked, packed] {
        let mut spec = vec![0x72];
        prost::encoding::encode_varint(context.len() as u64, &mut spec);
        spec.extend_from_slice(&context);
        let mut pod = vec![0x12];
        prost::encoding::encode_varint(spec.len() as u64, &mut pod);
        pod.extend_from_slice(&spec);
        let decoded = decode(&envelope_raw("v1", "Pod", pod)).unwrap();
        assert_eq!(
            decoded.object["spec"]["securityContext"],
            json!({"supplementalGroups": [1000, 2000]})
        );
    }
}

#[test]
fn common_kinds_are_supported() {
    for (api_version, kind) in [
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
        ("v1", "Namespace"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("autoscaling/v1", "HorizontalPodAutoscaler"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "DeleteOptions"),
    ] {
        assert!(
            timonel_proto::supports_kind(api_version, kind),
            "{api_version} {kind}"
        );
    }
    assert!(!timonel_proto::supports_kind("v1", "Widget"));
}

#[test]
fn service_with_int_target_port_and_job_with_cron_job() {
    let service = core::Service {
        metadata: meta_named("web", "default"),
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                name: s("http"),
                port: Some(80),
                target_port: Some(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: None,
                }),
                ..Default::default()
            }],
            selector: map(&[("app", "web".to_owned())]),
            r#type: s("ClusterIP"),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&envelope("v1", "Service", &service)).unwrap();
    assert_eq!(
        decoded.object["spec"],
        json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "web"}, "type": "ClusterIP"})
    );

    use k8s_pb::api::batch::v1 as batch;
    let cron = batch::CronJob {
        metadata: meta_named("nightly", "default"),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 3 * * *"),
            job_template: Some(batch::JobTemplateSpec {
                metadata: None,
                spec: Some(batch::JobSpec {
                    backoff_limit: Some(2),
                    template: Some(core::PodTemplateSpec {
                        metadata: None,
                        spec: Some(core::PodSpec {
                            restart_policy: s("Never"),
                            containers: vec![core::Container {
                                name: s("job"),
                                image: s("busybox"),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&envelope("batch/v1", "CronJob", &cron)).unwrap();
    let typed: k8s_openapi::api::batch::v1::CronJob =
        serde_json::from_value(decoded.object.clone()).unwrap();
    let job = typed.spec.unwrap().job_template.spec.unwrap();
    assert_eq!(job.backoff_limit, Some(2));
    assert_eq!(
        job.template.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox")
    );
    assert_eq!(decoded.object["spec"]["schedule"], Value::from("0 3 * * *"));
}

#[test]
fn embedded_protobuf_objects_share_the_depth_limit() {
    let mut body = envelope("v1", "ConfigMap", &core::ConfigMap::default());
    for _ in 0..300 {
        let revision = apps::ControllerRevision {
            data: Some(k8s_pb::apimachinery::pkg::runtime::RawExtension { raw: Some(body) }),
            ..Default::default()
        };
        body = envelope("apps/v1", "ControllerRevision", &revision);
    }
    let err = error_of(&body);
    assert!(err.to_string().contains("nested deeper"), "{err}");
}

#[test]
fn empty_strings_follow_go_json_omitempty() {
    // storageClassName is a Go *string: "" means "no dynamic provisioning" and must survive;
    // volumeName is a plain omitempty string; Container.name has no omitempty (required).
    let claim = core::PersistentVolumeClaim {
        metadata: meta_named("data", "default"),
        spec: Some(core::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            storage_class_name: s(""),
            volume_name: s(""),
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&envelope("v1", "PersistentVolumeClaim", &claim)).unwrap();
    assert_eq!(
        decoded.object["spec"],
        json!({"accessModes": ["ReadWriteOnce"], "storageClassName": ""})
    );

    let pod = core::Pod {
        metadata: meta_named("p", "default"),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: s(""),
                image: s(""),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let decoded = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(decoded.object["spec"]["containers"], json!([{"name": ""}]));
}
