use serde_json::{Value, json};
use timonel_schema::{DynamicSchemas, FieldKind, SchemaRegistry, StructuralSchema};

fn crontab_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": {
                    "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                    "image": {"type": "string", "minLength": 1, "maxLength": 20},
                    "replicas": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 10},
                    "mode": {"type": "string", "enum": ["Fast", "Slow"]},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "args": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "x-kubernetes-preserve-unknown-fields": true
                    },
                    "workers": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}}
                    }}
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    })
}

fn good_crontab() -> Value {
    json!({
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "c"},
        "spec": {
            "cronSpec": "*/5 * * * *",
            "image": "busybox",
            "replicas": 2,
            "mode": "Fast",
            "port": "http",
            "note": null,
            "args": ["a"],
            "labels": {"a": "b"},
            "extra": {"free": {"form": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}},
            "workers": [{"name": "w"}]
        }
    })
}

#[test]
fn valid_object_passes() {
    let schema = StructuralSchema::new(&crontab_schema()).expect("structural");
    assert_eq!(schema.validate(&good_crontab()), vec![]);
}

#[test]
fn type_errors_use_upstream_message() {
    let schema = StructuralSchema::new(&crontab_schema()).unwrap();
    let mut object = good_crontab();
    object["spec"]["replicas"] = json!("string");
    let errors = schema.validate(&object);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "spec.replicas");
    assert_eq!(errors[0].reason, "FieldValueTypeInvalid");
    assert_eq!(
        errors[0].message,
        "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
    );
    assert_eq!(
        errors[0].to_string(),
        "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
    );
}

#[test]
fn value_constraints_are_enforced() {
    let schema = StructuralSchema::new(&crontab_schema()).unwrap();
    let mut object = good_crontab();
    let spec = object["spec"].as_object_mut().unwrap();
    spec.remove("cronSpec");
    spec.insert("image".into(), json!("this image name is far too long"));
    spec.insert("replicas".into(), json!(0));
    spec.insert("mode".into(), json!("Medium"));
    spec.insert("port".into(), json!(true));
    spec.insert("args".into(), json!(["a", "b", "c"]));
    spec.insert("labels".into(), json!({"k": 1}));
    spec.insert("template".into(), json!({"spec": {}}));
    let errors = schema.validate(&object);
    let rendered: Vec<String> = errors
        .iter()
        .map(|e| format!("{} [{}] {}", e.field, e.reason, e.message))
        .collect();
    let expected = [
        "spec.cronSpec [FieldValueRequired] Required value",
        "spec.image [FieldValueTooLong] Too long: may not be more than 20 bytes",
        "spec.replicas [FieldValueInvalid] Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        "spec.mode [FieldValueNotSupported] Unsupported value: \"Medium\": supported values: \"Fast\", \"Slow\"",
        "spec.port [FieldValueTypeInvalid] Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
        "spec.args [FieldValueTooMany] Too many: 3: must have at most 2 items",
        "spec.labels[k] [FieldValueTypeInvalid] Invalid value: \"integer\": spec.labels[k] in body must be of type string: \"integer\"",
        "spec.template.apiVersion [FieldValueRequired] Required value: must not be empty",
        "spec.template.kind [FieldValueRequired] Required value: must not be empty",
    ];
    for line in expected {
        assert!(
            rendered.iter().any(|r| r == line),
            "missing {line:?} in {rendered:#?}"
        );
    }
    assert_eq!(rendered.len(), expected.len(), "{rendered:#?}");
}

#[test]
fn pattern_min_length_min_items_nullable_and_int32() {
    let schema = StructuralSchema::new(&crontab_schema()).unwrap();
    let mut object = good_crontab();
    object["spec"]["cronSpec"] = json!("never");
    object["spec"]["image"] = json!("");
    object["spec"]["args"] = json!([]);
    object["spec"]["mode"] = Value::Null;
    let errors = schema.validate(&object);
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m
                .starts_with("Invalid value: \"never\": spec.cronSpec in body should match '^(")),
        "{messages:?}"
    );
    assert!(
        messages
            .contains(&"Invalid value: \"\": spec.image in body should be at least 1 chars long")
    );
    assert!(messages.contains(&"Invalid value: 0: spec.args in body should have at least 1 items"));
    assert!(
        messages.contains(
            &"Invalid value: \"null\": spec.mode in body must be of type string: \"null\""
        )
    );
    assert_eq!(errors.len(), 4, "{messages:?}");

    let int32 = StructuralSchema::new(&json!({"type": "object", "properties": {
        "n": {"type": "integer", "format": "int32"}}}))
    .unwrap();
    let errors = int32.validate(&json!({"n": 3_000_000_000_i64}));
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("must be of type int32"));
}

#[test]
fn prune_removes_undeclared_fields_and_keeps_preserved_ones() {
    let schema = StructuralSchema::new(&crontab_schema()).unwrap();
    let mut object = good_crontab();
    object["spec"]["unknownField"] = json!(1);
    object["spec"]["workers"][0]["extra"] = json!("x");
    object["topLevel"] = json!(true);
    object["status"] = json!({"ready": true, "phase": "Running"});
    let pruned = schema.prune(&mut object);
    assert_eq!(
        pruned,
        // Document order (new keys are appended to their object).
        vec![
            "spec.workers[0].extra",
            "spec.unknownField",
            "topLevel",
            "status.phase"
        ]
    );
    let mut expected = good_crontab();
    expected["status"] = json!({"ready": true});
    assert_eq!(object, expected);
}

#[test]
fn non_structural_schemas_are_rejected() {
    let errors = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {
            "spec": {"properties": {"a": {"type": "string"}}},
            "list": {"type": "array"},
            "both": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": {"type": "string"}},
            "ios": {"type": "string", "x-kubernetes-int-or-string": true},
            "junctor": {"type": "string", "anyOf": [{"type": "string"}]}
        }
    }))
    .unwrap_err();
    let expected = [
        "properties[spec].type: Required value: must not be empty for specified object fields",
        "properties[list].items: Required value: must be specified",
        "properties[both].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
        "properties[ios].type: Invalid value: \"string\": must be empty if x-kubernetes-int-or-string is true",
        "properties[junctor].anyOf[0].type: Forbidden: must be empty to be structural",
    ];
    for line in expected {
        assert!(
            errors.iter().any(|e| e == line),
            "missing {line:?} in {errors:#?}"
        );
    }
    let root = StructuralSchema::new_at(
        &json!({"type": "string"}),
        "spec.versions[0].schema.openAPIV3Schema",
    )
    .unwrap_err();
    assert_eq!(
        root,
        vec![
            "spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"
        ]
    );
}

fn crontab_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "names": {"kind": "CronTab", "plural": "crontabs", "listKind": "CronTabList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": crontab_schema()}}]
        }
    })
}

#[test]
fn dynamic_schemas_extend_the_builtin_registry() {
    let mut dynamic = DynamicSchemas::new();
    let registered = dynamic.add_crd(&crontab_crd()).unwrap();
    assert_eq!(registered, vec!["com.example.stable.v1.CronTab"]);
    let view = SchemaRegistry::builtin().with_dynamic(&dynamic);
    let name = view
        .definition_for("stable.example.com", "v1", "CronTab")
        .unwrap();
    assert_eq!(name, "com.example.stable.v1.CronTab");
    assert_eq!(
        view.definition_for("apps", "v1", "Deployment"),
        Some("io.k8s.api.apps.v1.Deployment")
    );
    assert_eq!(
        view.definition(name).unwrap()["x-kubernetes-group-version-kind"],
        json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );

    let spec = view.field_type(name, "spec").unwrap();
    let FieldKind::Object(spec_name) = spec else {
        panic!("spec is {spec:?}")
    };
    assert_eq!(
        view.field_type(&spec_name, "workers"),
        Some(FieldKind::Array(Box::new(FieldKind::Object(format!(
            "{spec_name}/properties/workers/items"
        )))))
    );
    assert_eq!(
        view.field_type(&spec_name, "labels"),
        Some(FieldKind::Map(Box::new(FieldKind::Scalar)))
    );
    assert_eq!(
        view.field_type(&spec_name, "extra"),
        Some(FieldKind::Unknown)
    );
    assert_eq!(
        view.field_type(&format!("{spec_name}/properties/workers/items"), "name"),
        Some(FieldKind::Scalar)
    );
    assert_eq!(
        view.field_type(name, "metadata"),
        Some(FieldKind::Object(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into()
        ))
    );

    let mut object = good_crontab();
    object["spec"]["bogus"] = json!(1);
    object["spec"]["extra"]["anything"] = json!(1);
    object["metadata"]["nope"] = json!(1);
    let issues = view.check_fields(name, &object);
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, vec!["metadata.nope", "spec.bogus"]);

    assert!(dynamic.remove_crd("crontabs.stable.example.com"));
    let view = SchemaRegistry::builtin().with_dynamic(&dynamic);
    assert_eq!(
        view.definition_for("stable.example.com", "v1", "CronTab"),
        None
    );
    assert!(
        view.definition("com.example.stable.v1.CronTabList")
            .is_none()
    );
}
