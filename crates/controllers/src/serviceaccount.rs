//! ServiceAccount controller: every active namespace has a `default` ServiceAccount.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{Error, api_error_code};

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

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

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &ns.name_any());
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
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!(%error, "service account sync failed");
                Action::requeue(Duration::from_secs(5))
            },
            Arc::new(client),
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
    fn existing_account_or_terminating_namespace_needs_nothing() {
        assert!(missing_default(&namespace("Active"), true).is_none());
        assert!(missing_default(&namespace("Terminating"), false).is_none());
    }
}
