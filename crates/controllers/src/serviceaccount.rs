//! Per-namespace credentials, upstream's serviceaccount and root-ca-cert-publisher
//! controllers: every active namespace has a `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap (the CA that verifies the API server, which the
//! `kube-api-access-…` volumes project into pods), put back when deleted or changed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{Error, api_error_code};

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
const ROOT_CA_KEY: &str = "ca.crt";
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The `kube-root-ca.crt` ConfigMap a namespace should have.
pub fn root_ca_config_map(namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            annotations: Some(
                [(
                    "kubernetes.io/description".to_string(),
                    ROOT_CA_DESCRIPTION.to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([(ROOT_CA_KEY.to_string(), ca_pem.to_string())].into()),
        ..ConfigMap::default()
    }
}

/// Whether a namespace's existing ConfigMap already carries the CA.
fn root_ca_current(existing: &ConfigMap, ca_pem: &str) -> bool {
    existing
        .data
        .as_ref()
        .and_then(|d| d.get(ROOT_CA_KEY))
        .is_some_and(|v| v == ca_pem)
}

fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

/// The ServiceAccount to create, if the namespace is active and lacks its `default` one.
pub fn missing_default(ns: &Namespace, default_exists: bool) -> Option<ServiceAccount> {
    if default_exists || !is_active(ns) {
        return None;
    }
    Some(ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
            namespace: Some(ns.name_any()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    })
}

struct Context {
    client: Client,
    root_ca_pem: Option<String>,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    if let Some(ca_pem) = &ctx.root_ca_pem {
        publish_root_ca(client, &ns.name_any(), ca_pem).await?;
    }
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name_any());
    let exists = api.get_opt(DEFAULT_SERVICE_ACCOUNT).await?.is_some();
    if let Some(account) = missing_default(&ns, exists) {
        match api.create(&PostParams::default(), &account).await {
            // 409: created concurrently; 403: namespace started terminating meanwhile.
            Err(e) if !matches!(api_error_code(&e), Some(409 | 403 | 404)) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(Action::await_change())
}

async fn publish_root_ca(client: &Client, namespace: &str, ca_pem: &str) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let wanted = root_ca_config_map(namespace, ca_pem);
    let result = match api.get_opt(ROOT_CA_CONFIG_MAP).await? {
        Some(existing) if root_ca_current(&existing, ca_pem) => return Ok(()),
        Some(_) => api
            .patch(
                ROOT_CA_CONFIG_MAP,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {ROOT_CA_KEY: ca_pem}})),
            )
            .await
            .map(|_| ()),
        None => api
            .create(&PostParams::default(), &wanted)
            .await
            .map(|_| ()),
    };
    match result {
        // 409: created concurrently; 403/404: the namespace is going away.
        Err(e) if !matches!(api_error_code(&e), Some(409 | 403 | 404)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs the ServiceAccount controller until the watches end.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        // Only `default` accounts matter: deleting one triggers its namespace again.
        .watches(
            accounts,
            watcher::Config::default(),
            |account: ServiceAccount| {
                account
                    .namespace()
                    .filter(|_| account.name_any() == DEFAULT_SERVICE_ACCOUNT)
                    .map(|ns| ObjectRef::new(&ns))
            },
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}")),
            |map: ConfigMap| map.namespace().map(|ns| ObjectRef::new(&ns)),
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!(%error, "service account sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(Context {
                client,
                root_ca_pem: options.root_ca_pem.clone(),
            }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    fn namespace(phase: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus {
                phase: Some(phase.into()),
                conditions: None,
            }),
        }
    }

    #[test]
    fn creates_default_account_in_active_namespace() {
        let account = missing_default(&namespace("Active"), false).unwrap();
        assert_eq!(account.metadata.name.as_deref(), Some("default"));
        assert_eq!(account.metadata.namespace.as_deref(), Some("team"));
    }

    #[test]
    fn the_root_ca_config_map_carries_the_ca_and_is_current_only_with_it() {
        let map = root_ca_config_map("team", "PEM");
        assert_eq!(map.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(map.data.as_ref().unwrap()["ca.crt"], "PEM");
        assert!(root_ca_current(&map, "PEM"));
        assert!(!root_ca_current(&map, "OTHER"));
        assert!(!root_ca_current(&ConfigMap::default(), "PEM"));
    }

    #[test]
    fn existing_account_or_terminating_namespace_needs_nothing() {
        assert!(missing_default(&namespace("Active"), true).is_none());
        assert!(missing_default(&namespace("Terminating"), false).is_none());
    }
}
