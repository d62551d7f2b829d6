//! The one generic REST pipeline every kind goes through:
//! decode → (authenticate, done by the caller) → admit → default → validate → store → encode.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use timonel_api::registry::ResourceInfo;
use timonel_api::selectors::{FieldSelector, LabelSelector};
use timonel_api::status::{ApiError, Cause, Resource};
use timonel_api::table::IncludeObject;
use timonel_store::{Revision, StoreError};

use crate::body::{self, meta_mut, name_of};
use crate::request::{Query, Representation, ResourcePath, Verb};
use crate::server::{Reply, State, User};
use crate::{admission, glue, watch};

/// How many times a write is retried after losing an optimistic-concurrency race that the
/// client did not ask to lose.
const MAX_UPDATE_ATTEMPTS: usize = 16;

pub struct Request<'a> {
    pub info: Arc<ResourceInfo>,
    pub path: &'a ResourcePath,
    pub query: &'a Query,
    pub user: &'a User,
    pub content_type: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: &'a [u8],
}

impl Request<'_> {
    fn resource(&self) -> Resource<'_> {
        Resource {
            group: &self.info.group,
            plural: &self.info.plural,
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    fn key(&self, name: &str) -> String {
        self.info.object_key(self.namespace(), name)
    }

    /// The field manager: `?fieldManager=`, else the user agent's program name, as upstream.
    fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        self.user_agent
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }

    fn field_validation(&self) -> FieldValidation {
        match self.query.get("fieldValidation") {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

pub async fn handle(state: &Arc<State>, req: Request<'_>, verb: Verb) -> Result<Reply, ApiError> {
    let info = req.info.clone();
    if !info.namespaced && req.namespace().is_some() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if info.namespaced
        && req.namespace().is_none()
        && !matches!(verb, Verb::List | Verb::Watch)
        && req.path.subresource.is_none()
    {
        return Err(ApiError::method_not_allowed(format!(
            "{} is namespaced: use /namespaces/{{namespace}}/{}",
            info.plural, info.plural
        )));
    }
    if let Some(sub) = req.path.subresource.as_deref()
        && !info.has_subresource(sub)
    {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    match (verb, req.path.subresource.as_deref()) {
        (Verb::Get, Some("scale")) => get_scale(state, &req),
        (Verb::Update | Verb::Patch, Some("scale")) => update_scale(state, &req, verb).await,
        (Verb::Create, Some("binding")) => admission::bind_pod(state, &req).await,
        (Verb::Create, Some("eviction")) => admission::evict_pod(state, &req).await,
        (Verb::Create, Some("token")) if info.plural == "serviceaccounts" => {
            crate::tokens::create_token(state, &req).await
        }
        (Verb::Get, None | Some("status")) => get(state, &req),
        (Verb::List, None) => list(state, &req),
        (Verb::Watch, None) => watch::serve(state, &req),
        (Verb::Create, None) => create(state, &req).await,
        (Verb::Update, _) => update(state, &req).await,
        (Verb::Patch, _) => patch(state, &req).await,
        (Verb::Delete, None) => delete(state, &req).await,
        (Verb::DeleteCollection, None) => delete_collection(state, &req).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            info.plural
        ))),
    }
}

fn store_error(req: &Request<'_>, name: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::AlreadyExists(_) => ApiError::already_exists(req.resource(), name),
        StoreError::NotFound(_) => ApiError::not_found(req.resource(), name),
        StoreError::Conflict { .. } => ApiError::modified(req.resource(), name),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        other => ApiError::internal(other.to_string()),
    }
}

/// Encodes one object for the client, as a Table when asked.
fn encode_one(req: &Request<'_>, obj: Value) -> Value {
    match crate::request::negotiate(req.accept) {
        Representation::Table => glue::table(&req.info, &[obj], include_object(req.query), true),
        Representation::Metadata => partial_metadata(&obj),
        Representation::Object => obj,
    }
}

pub fn include_object(query: &Query) -> IncludeObject {
    match query.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"].clone(),
    })
}

fn get(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let name = req.path.name.as_deref().unwrap_or_default();
    let cached = state
        .cache
        .get(&req.key(name))
        .ok_or_else(|| ApiError::not_found(req.resource(), name))?;
    if crate::request::negotiate(req.accept) == Representation::Object {
        return Ok(Reply::Raw {
            status: StatusCode::OK,
            body: state.raw_out(&req.info, &cached),
        });
    }
    let obj = state.convert_out(&req.info, &cached.value());
    Ok(Reply::json(StatusCode::OK, encode_one(req, obj)))
}

/// Label and field selectors of a list or watch, compiled once.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_query(info: &ResourceInfo, query: &Query) -> Result<Filter, ApiError> {
        let labels = query
            .get("labelSelector")
            .map(LabelSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = query
            .get("fieldSelector")
            .map(FieldSelector::parse)
            .transpose()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if let Some(fields) = &fields {
            fields
                .check_supported(&info.group, &info.kind)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
        Ok(Filter { labels, fields })
    }

    /// Like [`Filter::matches`], parsing the object only when a field selector needs it.
    pub fn matches_cached(&self, obj: &crate::cache::CachedObject) -> bool {
        if let Some(labels) = &self.labels
            && !labels.matches(&obj.labels)
        {
            return false;
        }
        match &self.fields {
            None => true,
            Some(fields) => fields.matches(&obj.value()).unwrap_or(false),
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(labels) = &self.labels {
            let empty = Map::new();
            let obj_labels = obj["metadata"]["labels"].as_object().unwrap_or(&empty);
            if !labels.matches(obj_labels) {
                return false;
            }
        }
        if let Some(fields) = &self.fields
            && !fields.matches(obj).unwrap_or(false)
        {
            return false;
        }
        true
    }
}

fn list(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let info = &req.info;
    let filter = Filter::from_query(info, req.query)?;
    let limit: usize = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let start_after = req.query.get("continue").map(decode_continue).transpose()?;
    let prefix = info.list_prefix(req.namespace());
    let (items, revision, more) = state.cache.list(
        &prefix,
        start_after.as_deref(),
        |obj| filter.matches_cached(obj),
        limit,
    );
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if more && let Some((last_key, _)) = items.last() {
        metadata["continue"] = json!(encode_continue(last_key));
    }
    let representation = crate::request::negotiate(req.accept);
    if representation == Representation::Object {
        // Splice the cached bytes: no per-object parse or serialize (a list of 10,000 pods).
        let head =
            json!({"kind": info.list_kind, "apiVersion": info.api_version(), "metadata": metadata});
        let head = serde_json::to_vec(&head).expect("JSON serializes");
        let size: usize = items.iter().map(|(_, o)| o.raw.len() + 1).sum();
        let mut body = Vec::with_capacity(head.len() + size + 16);
        body.extend_from_slice(&head[..head.len() - 1]);
        body.extend_from_slice(b",\"items\":[");
        for (i, (_, obj)) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&state.raw_out(info, obj));
        }
        body.extend_from_slice(b"]}");
        return Ok(Reply::Raw {
            status: StatusCode::OK,
            body: bytes::Bytes::from(body),
        });
    }
    let objects: Vec<Value> = items
        .iter()
        .map(|(_, o)| state.convert_out(info, &o.value()))
        .collect();
    let body = match representation {
        Representation::Table => {
            let mut table = glue::table(info, &objects, include_object(req.query), true);
            table["metadata"] = metadata;
            table
        }
        _ => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": objects.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
    };
    Ok(Reply::json(StatusCode::OK, body))
}

fn encode_continue(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad_request("invalid continue token"))
}

/// Checks apiVersion/kind of a body against the resource and fills them in when absent.
fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let expected_version = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_version => {
            // Another served version of the same group and kind is acceptable (stored as ours).
            let same_group = v.rsplit_once('/').map(|(g, _)| g).unwrap_or("") == info.group;
            if !same_group {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({expected_version})"
                )));
            }
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )));
        }
        _ => {}
    }
    obj["apiVersion"] = json!(expected_version);
    obj["kind"] = json!(info.kind);
    Ok(())
}

/// Rejects or warns about unknown fields and fields of the wrong type.
fn check_fields(
    req: &Request<'_>,
    obj: &mut Value,
    warnings: &mut Vec<String>,
) -> Result<(), ApiError> {
    let info = &req.info;
    let mode = req.field_validation();
    let mut unknown = Vec::new();
    if let Some(custom) = &info.custom {
        if let Some(schema) = &custom.schema {
            let structural = timonel_schema::StructuralSchema::new(schema).map_err(|errs| {
                ApiError::internal(format!(
                    "invalid schema for {}: {}",
                    info.kind,
                    errs.join("; ")
                ))
            })?;
            unknown = structural.prune(obj);
        }
    } else if !info.definition.is_empty() {
        let issues = glue::schemas().check_fields(&info.definition, obj);
        let mut type_errors = Vec::new();
        for issue in issues {
            match issue.kind {
                timonel_schema::IssueKind::Unknown => unknown.push(issue.path),
                _ => type_errors.push(issue.message),
            }
        }
        if let Some(first) = type_errors.first() {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {first}",
                info.kind, info.version, info.kind
            )));
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    match mode {
        FieldValidation::Strict => {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )))
        }
        FieldValidation::Warn => {
            warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

/// Defaulting and validation of a new object state; `old` is set on update.
fn default_and_validate(
    state: &State,
    info: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if info.custom.is_none() {
        timonel_api::defaults::apply_defaults(&info.group, &info.version, &info.kind, obj);
    }
    use timonel_api::validation::{self as v, ErrorType, FieldError};
    let mut errors = Vec::new();
    if let Some(custom) = &info.custom {
        errors.extend(v::validate_object_meta(
            obj,
            info.namespaced,
            v::NameRule::Dns1123Subdomain,
        ));
        if let Some(schema) = &custom.schema
            && let Ok(structural) = timonel_schema::StructuralSchema::new(schema)
        {
            errors.extend(structural.validate(obj).into_iter().map(|e| FieldError {
                field: e.field,
                reason: match e.reason {
                    "FieldValueRequired" => ErrorType::FieldValueRequired,
                    "FieldValueNotSupported" => ErrorType::FieldValueNotSupported,
                    "FieldValueTypeInvalid" => ErrorType::FieldValueTypeInvalid,
                    "FieldValueTooLong" => ErrorType::FieldValueTooLong,
                    "FieldValueTooMany" => ErrorType::FieldValueTooMany,
                    "FieldValueDuplicate" => ErrorType::FieldValueDuplicate,
                    "FieldValueForbidden" => ErrorType::FieldValueForbidden,
                    _ => ErrorType::FieldValueInvalid,
                },
                message: e.message,
            }));
        }
    } else {
        errors.extend(v::validate_with_scope(
            &info.group,
            &info.kind,
            obj,
            old,
            Some(info.namespaced),
        ));
    }
    errors.extend(admission::validate_extra(state, info, obj, old));
    if errors.is_empty() {
        return Ok(());
    }
    let causes = errors
        .iter()
        .map(|e| Cause {
            reason: e.reason.reason().to_string(),
            message: e.message.clone(),
            field: e.field.clone(),
        })
        .collect();
    Err(ApiError::invalid(
        &info.group,
        &info.kind,
        name_of(obj),
        causes,
    ))
}

fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))
}

/// Serializes an object for storage: resourceVersion is the store's business, not the value's.
fn encode_for_store(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).expect("a JSON value always serializes")
}

fn set_resource_version(obj: &mut Value, revision: Revision) {
    meta_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// Kinds whose objects track `metadata.generation`.
fn tracks_generation(info: &ResourceInfo, obj: &Value) -> bool {
    info.custom.is_some() || (obj.get("spec").is_some() && info.kind != "Namespace")
}

/// Everything but metadata and status: a change here bumps the generation.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

async fn create(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let mut obj = body::decode_object(req.content_type, req.body)?;
    if let Some(reply) = admission::create_virtual(state, req, &obj)? {
        return Ok(reply);
    }
    let mut warnings = Vec::new();
    check_type(&req.info, &mut obj)?;
    check_fields(req, &mut obj, &mut warnings)?;
    let manager = req.manager();
    let (status, obj) = create_object(state, req, obj, &manager).await?;
    Ok(Reply::json(status, encode_one(req, obj)).with_warnings(warnings))
}

/// Creates a decoded, type-checked object: metadata, defaults, validation, admission, store.
async fn create_object(
    state: &Arc<State>,
    req: &Request<'_>,
    mut obj: Value,
    manager: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let info = req.info.clone();
    {
        let meta = meta_mut(&mut obj);
        if info.namespaced {
            let path_ns = req.namespace().unwrap_or_default();
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != path_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    meta.insert("namespace".into(), json!(path_ns));
                }
            }
        } else {
            meta.remove("namespace");
        }
        let has_name = meta
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", random_suffix());
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("creationTimestamp".into(), json!(body::now_rfc3339()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("generation");
        meta.remove("managedFields");
    }
    if info.namespaced {
        admission::require_namespace(state, req.namespace().unwrap_or_default())?;
    }
    if tracks_generation(&info, &obj) {
        meta_mut(&mut obj).insert("generation".into(), json!(1));
    }
    admission::prepare_create(state, &info, &mut obj)?;
    default_and_validate(state, &info, &mut obj, None)?;
    admission::allocate(state, &info, &mut obj, req.query.dry_run()).await?;
    let name = name_of(&obj).to_string();
    let managed = timonel_patch::apply::update_managed_fields(
        None,
        &obj,
        manager,
        None,
        &info.api_version(),
        &body::now_rfc3339(),
        &info.definition,
        &glue::SchemaTypes(glue::schemas()),
    );
    obj = managed;
    let key = req.key(&name);
    if state.cache.get(&key).is_some() {
        return Err(ApiError::already_exists(req.resource(), &name));
    }
    if req.query.dry_run() {
        return Ok((StatusCode::CREATED, state.convert_out(&info, &obj)));
    }
    let revision = state
        .store
        .create(&key, encode_for_store(&obj))
        .await
        .map_err(|e| store_error(req, &name, e))?;
    set_resource_version(&mut obj, revision);
    state.cache.wait_for(revision).await;
    admission::after_write(state, &info, Some(&obj)).await;
    Ok((StatusCode::CREATED, state.convert_out(&info, &obj)))
}

fn random_suffix() -> String {
    use rand::Rng;
    // Upstream's alphabet: consonants and digits that don't spell words.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// How a write derives the new object from the current one.
enum Change<'a> {
    /// PUT: the body replaces the object.
    Replace(Value),
    /// PATCH of one of the three patch types.
    Patch { media: &'a str, patch: Value },
    /// Server-side apply.
    Apply { applied: Value, force: bool },
}

async fn update(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let mut obj = body::decode_object(req.content_type, req.body)?;
    let mut warnings = Vec::new();
    check_type(&req.info, &mut obj)?;
    check_fields(req, &mut obj, &mut warnings)?;
    let name = req.path.name.clone().unwrap_or_default();
    if name_of(&obj) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&obj)
        )));
    }
    let (status, obj) = write(state, req, Change::Replace(obj), &mut warnings).await?;
    Ok(Reply::json(status, encode_one(req, obj)).with_warnings(warnings))
}

async fn patch(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let media = body::media_type(req.content_type);
    let mut warnings = Vec::new();
    let change = match media {
        "application/json-patch+json" | "application/merge-patch+json" => Change::Patch {
            media,
            patch: body::parse_json(req.body)?,
        },
        "application/strategic-merge-patch+json" => {
            if req.info.custom.is_some() {
                return Err(ApiError::unsupported_media_type(media).with_message(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            Change::Patch {
                media,
                patch: body::parse_json(req.body)?,
            }
        }
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            if req.query.get("fieldManager").is_none() {
                return Err(ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let mut applied = body::parse_yaml(req.body)?;
            if !applied.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding YAML: expected an object",
                ));
            }
            check_fields(req, &mut applied, &mut warnings)?;
            Change::Apply {
                applied,
                force: req.query.flag("force"),
            }
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    let (status, obj) = write(state, req, change, &mut warnings).await?;
    Ok(Reply::json(status, encode_one(req, obj)).with_warnings(warnings))
}

fn patch_error(e: timonel_patch::PatchError) -> ApiError {
    match e {
        timonel_patch::PatchError::InvalidPatch(m) => ApiError::bad_request(m),
        timonel_patch::PatchError::CannotApply(m) => ApiError::new(422, "Invalid", m),
    }
}

fn apply_change(
    req: &Request<'_>,
    current: &Value,
    change: &Change<'_>,
) -> Result<Value, ApiError> {
    let info = &req.info;
    let types = glue::SchemaTypes(glue::schemas());
    match change {
        Change::Replace(obj) => Ok(obj.clone()),
        Change::Patch { media, patch } => match *media {
            "application/json-patch+json" => {
                timonel_patch::json_patch(current, patch).map_err(patch_error)
            }
            "application/merge-patch+json" => {
                timonel_patch::merge_patch(current, patch).map_err(patch_error)
            }
            _ => if info.definition.is_empty() {
                timonel_patch::strategic_merge_patch(current, patch, "", &timonel_patch::NoTypes)
            } else {
                timonel_patch::strategic_merge_patch(current, patch, &info.definition, &types)
            }
            .map_err(patch_error),
        },
        Change::Apply { applied, force } => apply_config(req, Some(current), applied, *force),
    }
}

fn apply_config(
    req: &Request<'_>,
    live: Option<&Value>,
    applied: &Value,
    force: bool,
) -> Result<Value, ApiError> {
    let info = &req.info;
    let types = glue::SchemaTypes(glue::schemas());
    let manager = req.manager();
    timonel_patch::apply::apply(
        live,
        applied,
        &manager,
        req.path.subresource.as_deref(),
        force,
        &info.api_version(),
        &body::now_rfc3339(),
        &info.definition,
        &types,
    )
    .map_err(|e| match e {
        timonel_patch::apply::ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: c.message(),
                    field: c.field.clone(),
                })
                .collect();
            let n = causes.len();
            let detail: Vec<String> = conflicts
                .iter()
                .map(|c| format!("{}: {}", c.message(), c.field))
                .collect();
            let plural = if n == 1 { "" } else { "s" };
            ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {n} conflict{plural}: {}",
                    detail.join("\n")
                ),
            )
            .with_causes(causes)
        }
        other => ApiError::bad_request(other.to_string()),
    })
}

/// The read-modify-write loop shared by update, patch and apply (upstream's GuaranteedUpdate).
async fn write(
    state: &Arc<State>,
    req: &Request<'_>,
    change: Change<'_>,
    warnings: &mut Vec<String>,
) -> Result<(StatusCode, Value), ApiError> {
    let info = req.info.clone();
    let name = req.path.name.clone().unwrap_or_default();
    let key = req.key(&name);
    let subresource = req.path.subresource.as_deref();
    let manager = req.manager();
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let Some(current) = state.cache.get(&key) else {
            // Server-side apply creates; so does PUT for kinds that allow it.
            if let Change::Apply { applied, force } = &change {
                if subresource.is_some() {
                    return Err(ApiError::not_found(req.resource(), &name));
                }
                let mut applied = applied.clone();
                check_type(&info, &mut applied)?;
                meta_mut(&mut applied).insert("name".into(), json!(name));
                let obj = apply_config(req, None, &applied, *force)?;
                return create_applied(state, req, obj).await;
            }
            return Err(ApiError::not_found(req.resource(), &name));
        };
        let current_value = state.convert_out(&info, &current.value());
        let mut new = apply_change(req, &current_value, &change)?;
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the patched object is not a JSON object",
            ));
        }
        check_type(&info, &mut new)?;
        if matches!(change, Change::Patch { .. }) {
            // Patches can smuggle in unknown fields too.
            check_fields(req, &mut new, warnings)?;
        }
        let requested_rv = new["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if let Some(rv) = &requested_rv
            && parse_revision(rv)? != current.mod_revision
        {
            return Err(ApiError::modified(req.resource(), &name));
        }
        let mut new = merge_subresource(&info, &current_value, new, subresource);
        preserve_system_metadata(&current_value, &mut new);
        if name_of(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&new)
            )));
        }
        default_and_validate(state, &info, &mut new, Some(&current_value))?;
        if tracks_generation(&info, &new) {
            let generation = current_value["metadata"]["generation"]
                .as_i64()
                .unwrap_or(1);
            let bumped = if spec_part(&new) != spec_part(&current_value) {
                generation + 1
            } else {
                generation
            };
            meta_mut(&mut new).insert("generation".into(), json!(bumped));
        }
        if !matches!(change, Change::Apply { .. }) {
            new = timonel_patch::apply::update_managed_fields(
                Some(&current_value),
                &new,
                &manager,
                subresource,
                &info.api_version(),
                &body::now_rfc3339(),
                &info.definition,
                &glue::SchemaTypes(glue::schemas()),
            );
        }
        set_resource_version(&mut new, current.mod_revision);
        if new == current_value {
            // Nothing changed: upstream skips the write and keeps the resourceVersion.
            return Ok((StatusCode::OK, new));
        }
        let finalizers_done = new["metadata"]["deletionTimestamp"].is_string()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty())
            && new["spec"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty() || info.kind != "Namespace");
        if req.query.dry_run() {
            return Ok((StatusCode::OK, new));
        }
        let result = if finalizers_done {
            state
                .store
                .delete(&key, Some(current.mod_revision))
                .await
                .map(|(rev, _)| rev)
        } else {
            state
                .store
                .update(&key, encode_for_store(&new), current.mod_revision)
                .await
        };
        match result {
            Ok(revision) => {
                set_resource_version(&mut new, revision);
                state.cache.wait_for(revision).await;
                admission::after_write(state, &info, (!finalizers_done).then_some(&new)).await;
                return Ok((StatusCode::OK, new));
            }
            // Someone wrote in between: read again and redo the change. A request that named
            // a resourceVersion still carries the old one then and fails the check above.
            Err(StoreError::Conflict { current, .. }) => {
                state.cache.wait_for(current).await;
            }
            Err(StoreError::NotFound(_)) if requested_rv.is_none() => {
                state.cache.wait_for(state.store_revision().await).await;
            }
            Err(err) => return Err(store_error(req, &name, err)),
        }
    }
    Err(ApiError::modified(req.resource(), &name))
}

async fn create_applied(
    state: &Arc<State>,
    req: &Request<'_>,
    obj: Value,
) -> Result<(StatusCode, Value), ApiError> {
    // The apply already recorded field ownership; create_object's own Update entry would
    // wrongly claim every field for the applier again, so keep the apply's entries.
    let managed = obj["metadata"]["managedFields"].clone();
    let (status, mut created) = create_object(state, req, obj, &req.manager()).await?;
    if managed.is_array() && !req.query.dry_run() {
        let key = req.key(name_of(&created));
        meta_mut(&mut created).insert("managedFields".into(), managed);
        let revision = created["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        match state
            .store
            .update(&key, encode_for_store(&created), revision)
            .await
        {
            Ok(rev) => {
                set_resource_version(&mut created, rev);
                state.cache.wait_for(rev).await;
            }
            Err(err) => return Err(store_error(req, name_of(&created), err)),
        }
    } else if managed.is_array() {
        meta_mut(&mut created).insert("managedFields".into(), managed);
    }
    Ok((status, created))
}

/// The spec/status split: writes to the main resource keep the status, writes to /status keep
/// everything else.
fn merge_subresource(
    info: &ResourceInfo,
    current: &Value,
    mut new: Value,
    sub: Option<&str>,
) -> Value {
    match sub {
        Some("status") => {
            let mut merged = current.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null()
                && let Some(m) = merged.as_object_mut()
            {
                m.remove("status");
            }
            // Status writes may still carry a resourceVersion precondition.
            if let Some(rv) = new["metadata"].get("resourceVersion").cloned() {
                meta_mut(&mut merged).insert("resourceVersion".into(), rv);
            }
            merged
        }
        Some("finalize") => {
            // Only the namespace's spec.finalizers change through /finalize.
            let mut merged = current.clone();
            merged["spec"]["finalizers"] = new["spec"]["finalizers"].clone();
            if let Some(rv) = new["metadata"].get("resourceVersion").cloned() {
                meta_mut(&mut merged).insert("resourceVersion".into(), rv);
            }
            merged
        }
        None if info.has_subresource("status") => {
            if info.kind == "Namespace" && info.group.is_empty() {
                // Namespace finalizers change only through /finalize, as upstream.
                new["spec"]["finalizers"] = current["spec"]["finalizers"].clone();
                if new["spec"]["finalizers"].is_null()
                    && let Some(spec) = new["spec"].as_object_mut()
                {
                    spec.remove("finalizers");
                }
            }
            match current.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new
        }
        _ => new,
    }
}

/// Fields only the server sets survive whatever the client sent.
fn preserve_system_metadata(current: &Value, new: &mut Value) {
    let old_meta = current["metadata"].as_object().cloned().unwrap_or_default();
    let meta = meta_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    if !meta.contains_key("managedFields")
        && let Some(mf) = old_meta.get("managedFields")
    {
        meta.insert("managedFields".into(), mf.clone());
    }
}

/// DeleteOptions from the body (JSON or protobuf) and the query.
#[derive(Debug, Clone)]
pub(crate) struct DeleteOptions {
    pub(crate) grace_period: Option<i64>,
    pub(crate) propagation: Option<String>,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_rv: Option<String>,
    pub(crate) dry_run: bool,
}

fn delete_options(req: &Request<'_>) -> Result<DeleteOptions, ApiError> {
    let body = if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        Value::Null
    } else {
        body::decode_object(req.content_type, req.body)?
    };
    delete_options_from(&body, req.query)
}

/// DeleteOptions from a decoded body (a DeleteOptions object, or an Eviction's
/// `deleteOptions`) and the query.
pub(crate) fn delete_options_from(body: &Value, q: &Query) -> Result<DeleteOptions, ApiError> {
    let grace_period = body["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    let mut propagation = body["propagationPolicy"]
        .as_str()
        .map(str::to_string)
        .or_else(|| q.get("propagationPolicy").map(str::to_string));
    if propagation.is_none() {
        match body["orphanDependents"]
            .as_bool()
            .or_else(|| q.get("orphanDependents").map(|v| v == "true"))
        {
            Some(true) => propagation = Some("Orphan".into()),
            Some(false) => propagation = Some("Background".into()),
            None => {}
        }
    }
    if let Some(p) = &propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                field: "propagationPolicy".into(),
            }],
        ));
    }
    let dry_run = q.dry_run()
        || body["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        grace_period,
        propagation,
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        precondition_rv: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run,
    })
}

async fn delete(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let options = delete_options(req)?;
    let name = req.path.name.clone().unwrap_or_default();
    let (status, obj) = delete_object(state, req, &name, &options).await?;
    Ok(Reply::json(status, obj))
}

pub(crate) async fn delete_object(
    state: &Arc<State>,
    req: &Request<'_>,
    name: &str,
    options: &DeleteOptions,
) -> Result<(StatusCode, Value), ApiError> {
    let info = req.info.clone();
    let key = req.key(name);
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let current = state
            .cache
            .get(&key)
            .ok_or_else(|| ApiError::not_found(req.resource(), name))?;
        let mut obj = state.convert_out(&info, &current.value());
        if let Some(uid) = &options.precondition_uid
            && obj["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict(
                req.resource(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    obj["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &options.precondition_rv
            && parse_revision(rv)? != current.mod_revision
        {
            return Err(ApiError::conflict(
                req.resource(),
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current.mod_revision
                ),
            ));
        }
        let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut changed = false;
        match options.propagation.as_deref() {
            Some("Orphan") if !finalizers.contains(&json!("orphan")) => {
                finalizers.push(json!("orphan"));
                changed = true;
            }
            Some("Foreground") if !finalizers.contains(&json!("foregroundDeletion")) => {
                finalizers.push(json!("foregroundDeletion"));
                changed = true;
            }
            _ => {}
        }
        let graceful = admission::graceful_period(&info, &obj, options.grace_period);
        let already_deleting = obj["metadata"]["deletionTimestamp"].is_string();
        let immediate = finalizers.is_empty() && graceful.is_none();
        if immediate && !(info.kind == "Namespace" && info.group.is_empty()) {
            if options.dry_run {
                return Ok((StatusCode::OK, obj));
            }
            match state.store.delete(&key, Some(current.mod_revision)).await {
                Ok((revision, _)) => {
                    state.cache.wait_for(revision).await;
                    admission::after_delete(state, &info, &obj).await;
                    return Ok((StatusCode::OK, obj));
                }
                Err(StoreError::Conflict { current, .. }) => {
                    state.cache.wait_for(current).await;
                    continue;
                }
                Err(err) => return Err(store_error(req, name, err)),
            }
        }
        if already_deleting && !changed {
            // Shortening a pod's grace period is upstream behaviour; otherwise nothing to do.
            let current_grace = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
            match (graceful, current_grace) {
                (Some(g), Some(c)) if g < c => {}
                _ => return Ok((StatusCode::ACCEPTED, obj)),
            }
        }
        let meta = meta_mut(&mut obj);
        let grace = graceful.unwrap_or(0);
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
        meta.insert(
            "deletionTimestamp".into(),
            json!(when.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !finalizers.is_empty() {
            meta.insert("finalizers".into(), Value::Array(finalizers));
        }
        if info.kind == "Namespace" && info.group.is_empty() {
            obj["status"]["phase"] = json!("Terminating");
        }
        if options.dry_run {
            return Ok((StatusCode::ACCEPTED, obj));
        }
        match state
            .store
            .update(&key, encode_for_store(&obj), current.mod_revision)
            .await
        {
            Ok(revision) => {
                set_resource_version(&mut obj, revision);
                state.cache.wait_for(revision).await;
                return Ok((StatusCode::ACCEPTED, obj));
            }
            Err(StoreError::Conflict { current, .. }) => state.cache.wait_for(current).await,
            Err(err) => return Err(store_error(req, name, err)),
        }
    }
    Err(ApiError::modified(req.resource(), name))
}

async fn delete_collection(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let options = delete_options(req)?;
    let filter = Filter::from_query(&req.info, req.query)?;
    let prefix = req.info.list_prefix(req.namespace());
    let (items, revision, _) = state
        .cache
        .list(&prefix, None, |o| filter.matches_cached(o), 0);
    let mut deleted = Vec::new();
    for (_, obj) in items {
        let name = name_of(&obj.value()).to_string();
        match delete_object(state, req, &name, &options).await {
            Ok((_, obj)) => deleted.push(obj),
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(Reply::json(
        StatusCode::OK,
        json!({
            "kind": req.info.list_kind,
            "apiVersion": req.info.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
            "items": deleted,
        }),
    ))
}

/// Where a scalable kind keeps its replicas and selector.
fn scale_paths(info: &ResourceInfo) -> (String, String, Option<String>) {
    match info.custom.as_ref().and_then(|c| c.scale.clone()) {
        Some(paths) => paths,
        None => (
            ".spec.replicas".into(),
            ".status.replicas".into(),
            Some(".spec.selector".into()),
        ),
    }
}

/// A label selector (metav1.LabelSelector or a plain map) in its string form.
fn selector_string(selector: &Value) -> String {
    if let Some(s) = selector.as_str() {
        return s.to_string();
    }
    let map = if selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some()
    {
        &selector["matchLabels"]
    } else {
        selector
    };
    let mut parts: Vec<String> = map
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for expr in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = expr["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = expr["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match expr["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.sort();
    parts.join(",")
}

fn scale_of(info: &ResourceInfo, obj: &Value) -> Value {
    let (spec_path, status_path, selector_path) = scale_paths(info);
    let meta = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": body::get_path(obj, &spec_path).cloned().unwrap_or(json!(0))},
        "status": {"replicas": body::get_path(obj, &status_path).cloned().unwrap_or(json!(0))},
    });
    if let Some(selector) = selector_path.and_then(|p| body::get_path(obj, &p).cloned()) {
        scale["status"]["selector"] = json!(selector_string(&selector));
    }
    scale
}

fn get_scale(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let name = req.path.name.as_deref().unwrap_or_default();
    let cached = state
        .cache
        .get(&req.key(name))
        .ok_or_else(|| ApiError::not_found(req.resource(), name))?;
    Ok(Reply::json(
        StatusCode::OK,
        scale_of(&req.info, &cached.value()),
    ))
}

async fn update_scale(
    state: &Arc<State>,
    req: &Request<'_>,
    verb: Verb,
) -> Result<Reply, ApiError> {
    let name = req.path.name.clone().unwrap_or_default();
    let key = req.key(&name);
    let (spec_path, _, _) = scale_paths(&req.info);
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let current = state
            .cache
            .get(&key)
            .ok_or_else(|| ApiError::not_found(req.resource(), &name))?;
        let current_value = current.value();
        let scale = scale_of(&req.info, &current_value);
        let new_scale = match verb {
            Verb::Update => body::decode_object(req.content_type, req.body)?,
            _ => {
                let media = body::media_type(req.content_type);
                let patch = body::parse_json(req.body)?;
                let patched = match media {
                    "application/json-patch+json" => timonel_patch::json_patch(&scale, &patch),
                    _ => timonel_patch::merge_patch(&scale, &patch),
                };
                patched.map_err(patch_error)?
            }
        };
        let replicas = new_scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        if let Some(rv) = new_scale["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            && parse_revision(rv)? != current.mod_revision
        {
            return Err(ApiError::modified(req.resource(), &name));
        }
        let mut obj = current_value.clone();
        body::set_path(&mut obj, &spec_path, json!(replicas));
        if obj == current_value {
            return Ok(Reply::json(StatusCode::OK, scale));
        }
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
        meta_mut(&mut obj).insert("generation".into(), json!(generation + 1));
        let obj = timonel_patch::apply::update_managed_fields(
            Some(&current_value),
            &obj,
            &req.manager(),
            Some("scale"),
            &req.info.api_version(),
            &body::now_rfc3339(),
            &req.info.definition,
            &glue::SchemaTypes(glue::schemas()),
        );
        if req.query.dry_run() {
            return Ok(Reply::json(StatusCode::OK, scale_of(&req.info, &obj)));
        }
        match state
            .store
            .update(&key, encode_for_store(&obj), current.mod_revision)
            .await
        {
            Ok(revision) => {
                let mut obj = obj;
                set_resource_version(&mut obj, revision);
                state.cache.wait_for(revision).await;
                return Ok(Reply::json(StatusCode::OK, scale_of(&req.info, &obj)));
            }
            Err(StoreError::Conflict { current, .. }) => state.cache.wait_for(current).await,
            Err(err) => return Err(store_error(req, &name, err)),
        }
    }
    Err(ApiError::modified(req.resource(), &name))
}

trait WithMessage {
    fn with_message(self, message: &str) -> Self;
}

impl WithMessage for ApiError {
    fn with_message(mut self, message: &str) -> Self {
        self.message = message.to_string();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_strings_match_kubectl() {
        assert_eq!(
            selector_string(&json!({"matchLabels": {"b": "2", "a": "1"}})),
            "a=1,b=2"
        );
        assert_eq!(
            selector_string(
                &json!({"matchExpressions": [{"key": "x", "operator": "In", "values": ["p", "q"]}]})
            ),
            "x in (p,q)"
        );
    }

    #[test]
    fn continue_tokens_round_trip() {
        let key = "/registry/core/pods/ns/web-1";
        assert_eq!(decode_continue(&encode_continue(key)).unwrap(), key);
        assert!(decode_continue("%%%").is_err());
    }
}
