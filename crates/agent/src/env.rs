//! A container's environment, as kubelet's `makeEnvironmentVariables`: image env, then
//! `envFrom` sources, then `env` entries in order (each may reference the ones before it
//! with `$(NAME)`), values from ConfigMaps, Secrets and the downward API.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use crate::containers::{cpu_millis, expand_references, memory_bytes};

/// Fetches ConfigMaps and Secrets once per sync.
pub struct Sources<'a> {
    pub client: &'a kube::Client,
    pub namespace: &'a str,
    pub config_maps: BTreeMap<String, Option<BTreeMap<String, String>>>,
    pub secrets: BTreeMap<String, Option<BTreeMap<String, String>>>,
}

impl<'a> Sources<'a> {
    pub fn new(client: &'a kube::Client, namespace: &'a str) -> Self {
        Sources {
            client,
            namespace,
            config_maps: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// The data of a ConfigMap, `None` when it does not exist.
    pub async fn config_map(
        &mut self,
        name: &str,
    ) -> anyhow::Result<Option<BTreeMap<String, String>>> {
        if let Some(found) = self.config_maps.get(name) {
            return Ok(found.clone());
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
        let data = api.get_opt(name).await?.map(|cm| {
            let mut data = cm.data.unwrap_or_default();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            data
        });
        self.config_maps.insert(name.to_string(), data.clone());
        Ok(data)
    }

    /// The decoded data of a Secret, `None` when it does not exist.
    pub async fn secret(&mut self, name: &str) -> anyhow::Result<Option<BTreeMap<String, String>>> {
        if let Some(found) = self.secrets.get(name) {
            return Ok(found.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        let data = api.get_opt(name).await?.map(|s| {
            let mut data: BTreeMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            data.extend(s.string_data.unwrap_or_default());
            data
        });
        self.secrets.insert(name.to_string(), data.clone());
        Ok(data)
    }

    /// Raw bytes of a Secret's keys (volumes keep binary data intact).
    pub async fn secret_bytes(
        &mut self,
        name: &str,
    ) -> anyhow::Result<Option<BTreeMap<String, Vec<u8>>>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        Ok(api.get_opt(name).await?.map(|s| {
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        }))
    }
}

/// Why a container cannot be configured yet (kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// The downward API value of a `fieldRef` path.
pub fn field_value(pod: &Pod, path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let subscript = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = subscript("metadata.labels['", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = subscript("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(v);
    }
    let format_map = |m: Option<&BTreeMap<String, String>>| {
        m.map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => status
            .and_then(|s| s.host_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        other => {
            return Err(ConfigError(format!("unsupported fieldRef path {other:?}")));
        }
    })
}

/// The downward API value of a `resourceFieldRef` (`limits.memory`, `requests.cpu`, …) with
/// its divisor; an unset limit reports the node's allocatable, as upstream.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpus: u64,
    node_memory: u64,
) -> Result<String, ConfigError> {
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resource {resource:?}")))?;
    let resources = container.resources.as_ref();
    let map = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(ConfigError(format!("unsupported resource {resource:?}"))),
    };
    let quantity = map.and_then(|m| m.get(name));
    match name {
        "cpu" => {
            let millis = quantity.map(cpu_millis).unwrap_or(if kind == "limits" {
                node_cpus * 1000
            } else {
                0
            });
            let divisor = divisor
                .map(|d| {
                    cpu_millis(&k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        d.into(),
                    ))
                })
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            Ok(millis.div_ceil(divisor).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = quantity.map(memory_bytes).unwrap_or(if kind == "limits" {
                node_memory
            } else {
                0
            });
            let divisor = divisor
                .map(|d| {
                    memory_bytes(&k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        d.into(),
                    ))
                })
                .filter(|d| *d > 0)
                .unwrap_or(1);
            Ok(bytes.div_ceil(divisor).to_string())
        }
        _ => Err(ConfigError(format!("unsupported resource {resource:?}"))),
    }
}

/// One key of a ConfigMap or Secret that `valueFrom` names (`data` is the object's, `None`
/// when it does not exist): `Ok(None)` when the reference is optional and the key or object
/// is missing, with kubelet's messages otherwise.
fn referenced_key(
    data: Option<BTreeMap<String, String>>,
    kind: &str,
    namespace: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, ConfigError> {
    let optional = optional == Some(true);
    match data {
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {key} in {kind} {namespace}/{name}"
            ))),
        },
        None if optional => Ok(None),
        None => Err(ConfigError(format!(
            "{} \"{name}\" not found",
            kind.to_lowercase()
        ))),
    }
}

/// The container's environment, `KEY=value` entries in kubelet's order, image env first.
pub async fn environment(
    pod: &Pod,
    container: &Container,
    image_env: &[String],
    sources: &mut Sources<'_>,
    node_cpus: u64,
    node_memory: u64,
) -> anyhow::Result<Result<Vec<(String, String)>, ConfigError>> {
    let mut vars: Vec<(String, String)> = image_env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let set = |vars: &mut Vec<(String, String)>, key: String, value: String| {
        if let Some(slot) = vars.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            vars.push((key, value));
        }
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_map(&r.name).await? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Ok(Err(ConfigError(format!(
                        "configmap \"{}\" not found",
                        r.name
                    ))));
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secret(&r.name).await? {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Ok(Err(ConfigError(format!("secret \"{}\" not found", r.name)))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            let referenced = if let Some(r) = &from.config_map_key_ref {
                let data = sources.config_map(&r.name).await?;
                Some(referenced_key(
                    data,
                    "ConfigMap",
                    sources.namespace,
                    &r.name,
                    &r.key,
                    r.optional,
                ))
            } else if let Some(r) = &from.secret_key_ref {
                let data = sources.secret(&r.name).await?;
                Some(referenced_key(
                    data,
                    "Secret",
                    sources.namespace,
                    &r.name,
                    &r.key,
                    r.optional,
                ))
            } else {
                None
            };
            if let Some(referenced) = referenced {
                match referenced {
                    Ok(Some(v)) => v,
                    Ok(None) => continue,
                    Err(e) => return Ok(Err(e)),
                }
            } else if let Some(r) = &from.field_ref {
                match field_value(pod, &r.field_path) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            } else if let Some(r) = &from.resource_field_ref {
                match resource_value(
                    container,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    node_cpus,
                    node_memory,
                ) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            } else {
                String::new()
            }
        } else {
            expand_references(var.value.as_deref().unwrap_or(""), &vars)
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(Ok(vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_keys_give_kubelets_messages_or_skip_when_optional() {
        let data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
        let get =
            |data, key, optional| referenced_key(data, "ConfigMap", "ns", "cm", key, optional);
        assert_eq!(get(data.clone(), "k", None), Ok(Some("v".into())));
        assert_eq!(
            get(data.clone(), "x", None),
            Err(ConfigError("couldn't find key x in ConfigMap ns/cm".into()))
        );
        assert_eq!(get(data, "x", Some(true)), Ok(None));
        assert_eq!(
            referenced_key(None, "Secret", "ns", "s", "k", Some(false)),
            Err(ConfigError("secret \"s\" not found".into()))
        );
        assert_eq!(get(None, "k", Some(true)), Ok(None));
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]},
            "status": {"podIP": "10.42.0.5", "hostIP": "127.0.0.1"}
        }))
        .unwrap()
    }

    #[test]
    fn downward_api_fields() {
        let p = pod();
        assert_eq!(field_value(&p, "metadata.name").unwrap(), "p");
        assert_eq!(field_value(&p, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field_value(&p, "metadata.labels").unwrap(), "app=\"web\"");
        assert_eq!(field_value(&p, "status.podIP").unwrap(), "10.42.0.5");
        assert_eq!(field_value(&p, "spec.nodeName").unwrap(), "n1");
        assert!(field_value(&p, "spec.bogus").is_err());
    }

    #[test]
    fn resource_fields_with_divisors_and_node_fallback() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            resource_value(c, "limits.memory", Some("1Mi"), 2, 1 << 30).unwrap(),
            "64"
        );
        assert_eq!(
            resource_value(c, "limits.cpu", None, 2, 1 << 30).unwrap(),
            "2"
        );
        assert_eq!(
            resource_value(c, "requests.cpu", Some("1m"), 2, 1 << 30).unwrap(),
            "0"
        );
    }
}
