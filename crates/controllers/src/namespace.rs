//! Namespace controller: empties a terminating namespace, then removes its `kubernetes`
//! finalizer through the `finalize` subresource so the API server can drop it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::ControllerOptions;
use crate::common::{Error, api_error_code};

/// The finalizer the namespace controller owns (`spec.finalizers`).
pub const KUBERNETES_FINALIZER: &str = "kubernetes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespacePlan {
    /// Active, or already finalized by this controller.
    Nothing,
    /// Objects remain: delete them and look again.
    DeleteContents,
    /// Empty: write these `spec.finalizers` (without `kubernetes`) through `finalize`.
    Finalize { finalizers: Vec<String> },
}

fn spec_finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

/// Decides what to do with `ns` given how many objects were found in it.
pub fn plan(ns: &Namespace, remaining_objects: usize) -> NamespacePlan {
    let finalizers = spec_finalizers(ns);
    if ns.metadata.deletion_timestamp.is_none()
        || !finalizers.iter().any(|f| f == KUBERNETES_FINALIZER)
    {
        return NamespacePlan::Nothing;
    }
    if remaining_objects > 0 {
        return NamespacePlan::DeleteContents;
    }
    NamespacePlan::Finalize {
        finalizers: finalizers
            .into_iter()
            .filter(|f| f != KUBERNETES_FINALIZER)
            .collect(),
    }
}

/// The body of `PUT /api/v1/namespaces/NAME/finalize`.
pub fn finalize_body(ns: &Namespace, finalizers: Vec<String>) -> Namespace {
    let mut body = ns.clone();
    body.spec = Some(NamespaceSpec {
        finalizers: Some(finalizers),
    });
    body
}

/// Deletes every namespaced object in `namespace`; returns how many were still there.
async fn delete_contents(client: &Client, namespace: &str) -> Result<usize, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut found = 0;
    for group in discovery.groups() {
        for (resource, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
            {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let objects = match api.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) if matches!(api_error_code(&e), Some(404 | 405)) => continue,
                Err(e) => return Err(e.into()),
            };
            for object in objects {
                found += 1;
                if object.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match api
                    .delete(&object.name_any(), &DeleteParams::background())
                    .await
                {
                    Err(e) if !matches!(api_error_code(&e), Some(404 | 409)) => {
                        return Err(e.into());
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(found)
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, Error> {
    if plan(&ns, 1) == NamespacePlan::Nothing {
        return Ok(Action::await_change());
    }
    let remaining = delete_contents(&client, &ns.name_any()).await?;
    match plan(&ns, remaining) {
        NamespacePlan::Nothing => Ok(Action::await_change()),
        // Objects with finalizers or grace periods take a while: look again shortly.
        NamespacePlan::DeleteContents => Ok(Action::requeue(Duration::from_secs(2))),
        NamespacePlan::Finalize { finalizers } => {
            let api: Api<Namespace> = Api::all((*client).clone());
            let body = finalize_body(&ns, finalizers);
            match api
                .replace_subresource("finalize", &ns.name_any(), &PostParams::default(), &body)
                .await
            {
                Err(e) if api_error_code(&e) != Some(404) => Err(e.into()),
                _ => Ok(Action::await_change()),
            }
        }
    }
}

/// Runs the namespace controller until the watch ends.
pub async fn run(client: Client, options: ControllerOptions) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(options.concurrency))
        .run(
            reconcile,
            |_, error, _| {
                tracing::warn!(%error, "namespace cleanup failed");
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
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn namespace(deleting: bool, finalizers: &[&str]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: deleting.then_some(Time(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(NamespaceSpec {
                finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            }),
            status: None,
        }
    }

    #[test]
    fn active_namespace_is_left_alone() {
        assert_eq!(
            plan(&namespace(false, &["kubernetes"]), 3),
            NamespacePlan::Nothing
        );
    }

    #[test]
    fn terminating_namespace_with_objects_is_emptied_first() {
        assert_eq!(
            plan(&namespace(true, &["kubernetes"]), 3),
            NamespacePlan::DeleteContents
        );
    }

    #[test]
    fn empty_terminating_namespace_drops_only_the_kubernetes_finalizer() {
        let ns = namespace(true, &["kubernetes", "example.com/other"]);
        let NamespacePlan::Finalize { finalizers } = plan(&ns, 0) else {
            panic!("expected finalize")
        };
        assert_eq!(finalizers, ["example.com/other"]);
        let body = finalize_body(&ns, finalizers);
        assert_eq!(
            body.spec.unwrap().finalizers.unwrap(),
            ["example.com/other"]
        );
    }

    #[test]
    fn already_finalized_namespace_needs_nothing() {
        assert_eq!(plan(&namespace(true, &[]), 0), NamespacePlan::Nothing);
    }
}
