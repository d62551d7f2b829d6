//! Turning an HTTP request into what it asks of the API: path parts, verb, options.

use std::collections::HashMap;

use hyper::Method;

/// A resource request's path, parsed as upstream's RequestInfoFactory does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// `/watch/` legacy prefix was used.
    pub legacy_watch: bool,
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`; None for other paths.
pub fn parse_resource_path(path: &str) -> Option<ResourcePath> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return None,
    };
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        legacy_watch = true;
        rest = &rest[1..];
    }
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        let ns = rest[1];
        // /namespaces/{name}/status and /finalize are subresources of the namespace itself.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            namespace = Some(ns.to_string());
            rest = &rest[2..];
        }
    }
    if rest.is_empty() || rest.iter().any(|p| p.is_empty()) {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: rest[0].to_string(),
        name: rest.get(1).map(|s| decode(s)),
        subresource: rest.get(2).map(|s| s.to_string()),
        legacy_watch,
    })
    .filter(|_| rest.len() <= 3)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

pub fn verb_for(method: &Method, path: &ResourcePath, query: &Query) -> Option<Verb> {
    let named = path.name.is_some();
    Some(match *method {
        Method::GET | Method::HEAD => {
            if path.legacy_watch || query.flag("watch") {
                Verb::Watch
            } else if named {
                Verb::Get
            } else {
                Verb::List
            }
        }
        Method::POST => Verb::Create,
        Method::PUT if named => Verb::Update,
        Method::PATCH if named => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => return None,
    })
}

/// Query parameters; repeated keys keep every value.
#[derive(Debug, Clone, Default)]
pub struct Query {
    values: HashMap<String, Vec<String>>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(raw) = raw {
            for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
                values
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
        }
        Query { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn dry_run(&self) -> bool {
        self.all("dryRun").iter().any(|v| v == "All")
    }
}

/// What the client accepts, reduced to what we can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    Table,
    /// metav1 PartialObjectMetadata(List).
    Metadata,
}

pub fn negotiate(accept: Option<&str>) -> Representation {
    let Some(accept) = accept else {
        return Representation::Object;
    };
    for clause in accept.split(',') {
        let clause = clause.trim();
        let mut params = clause.split(';').map(str::trim);
        let media = params.next().unwrap_or_default();
        if media != "application/json"
            && media != "*/*"
            && media != "application/vnd.kubernetes.protobuf"
        {
            continue;
        }
        let mut as_kind = None;
        let mut group = None;
        for p in params {
            if let Some(v) = p.strip_prefix("as=") {
                as_kind = Some(v);
            } else if let Some(v) = p.strip_prefix("g=") {
                group = Some(v);
            }
        }
        match (as_kind, group) {
            (Some("Table"), Some("meta.k8s.io")) if media == "application/json" => {
                return Representation::Table;
            }
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io"))
                if media == "application/json" =>
            {
                return Representation::Metadata;
            }
            (None, _) => return Representation::Object,
            _ => continue,
        }
    }
    Representation::Object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_and_group_paths() {
        let p = parse_resource_path("/api/v1/namespaces/default/pods/web-1/log").unwrap();
        assert_eq!(p.group, "");
        assert_eq!(p.namespace.as_deref(), Some("default"));
        assert_eq!(p.resource, "pods");
        assert_eq!(p.name.as_deref(), Some("web-1"));
        assert_eq!(p.subresource.as_deref(), Some("log"));
        let p = parse_resource_path("/apis/apps/v1/deployments").unwrap();
        assert_eq!(
            (p.group.as_str(), p.resource.as_str(), p.namespace),
            ("apps", "deployments", None)
        );
        let p = parse_resource_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (p.resource.as_str(), p.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let p = parse_resource_path("/api/v1/namespaces/x/status").unwrap();
        assert_eq!(p.subresource.as_deref(), Some("status"));
        assert!(parse_resource_path("/api/v1").is_none());
        let p = parse_resource_path("/api/v1/watch/namespaces/a/pods").unwrap();
        assert!(p.legacy_watch);
        assert_eq!(p.namespace.as_deref(), Some("a"));
    }

    #[test]
    fn negotiates_tables_like_kubectl() {
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(kubectl)), Representation::Table);
        assert_eq!(negotiate(Some("application/json")), Representation::Object);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf,application/json")),
            Representation::Object
        );
        assert_eq!(negotiate(None), Representation::Object);
    }

    #[test]
    fn query_keeps_repeated_values() {
        let q = Query::parse(Some("command=sh&command=-c&dryRun=All&watch=1"));
        assert_eq!(q.all("command"), ["sh", "-c"]);
        assert!(q.dry_run());
        assert!(q.flag("watch"));
    }
}
