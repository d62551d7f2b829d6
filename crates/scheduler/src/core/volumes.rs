//! Upstream's VolumeBinding plugin, for what a cluster here has: a pod's claims must exist,
//! a claim bound to a volume restricts the pod to the nodes that volume reaches, and a claim
//! of a `WaitForFirstConsumer` class is left for the provisioner once the pod has a node
//! (the driver writes that node on the claim before binding the pod).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

pub const REASON_VOLUME_NODE_AFFINITY: &str = "node(s) had volume node affinity conflict";
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const REASON_MISSING_VOLUME: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// The claims, volumes and classes of the cluster, as the scheduler's watches see them.
#[derive(Clone, Debug, Default)]
pub struct VolumeCatalog {
    claims: HashMap<String, PersistentVolumeClaim>,
    volumes: HashMap<String, PersistentVolume>,
    classes: HashMap<String, StorageClass>,
}

fn claim_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl VolumeCatalog {
    pub fn clear_claims(&mut self) {
        self.claims.clear();
    }

    pub fn clear_volumes(&mut self) {
        self.volumes.clear();
    }

    pub fn clear_classes(&mut self) {
        self.classes.clear();
    }

    pub fn upsert_claim(&mut self, claim: PersistentVolumeClaim) {
        let key = claim_key(
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            claim.metadata.name.as_deref().unwrap_or_default(),
        );
        self.claims.insert(key, claim);
    }

    pub fn remove_claim(&mut self, namespace: &str, name: &str) {
        self.claims.remove(&claim_key(namespace, name));
    }

    pub fn upsert_volume(&mut self, volume: PersistentVolume) {
        self.volumes
            .insert(volume.metadata.name.clone().unwrap_or_default(), volume);
    }

    pub fn remove_volume(&mut self, name: &str) {
        self.volumes.remove(name);
    }

    pub fn upsert_class(&mut self, class: StorageClass) {
        self.classes
            .insert(class.metadata.name.clone().unwrap_or_default(), class);
    }

    pub fn remove_class(&mut self, name: &str) {
        self.classes.remove(name);
    }
}

/// A pod's claims, resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodVolumes {
    /// Required node terms of each bound volume: a node must match every entry.
    pub node_terms: Vec<Vec<NodeSelectorTerm>>,
    /// Claims (names in the pod's namespace) waiting for their first consumer's node.
    pub delayed: Vec<String>,
}

/// Resolves the pod's claims, or the reason no node can take the pod now.
pub fn resolve(pod: &Pod, catalog: &VolumeCatalog) -> Result<PodVolumes, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut out = PodVolumes::default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for volume in volumes {
        let Some(source) = &volume.persistent_volume_claim else {
            continue;
        };
        let name = &source.claim_name;
        let Some(claim) = catalog.claims.get(&claim_key(namespace, name)) else {
            return Err(format!("persistentvolumeclaim \"{name}\" not found"));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        let spec = claim.spec.as_ref();
        match spec
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty())
        {
            Some(bound) => {
                let Some(pv) = catalog.volumes.get(bound) else {
                    return Err(REASON_MISSING_VOLUME.into());
                };
                if let Some(required) = pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_affinity.as_ref())
                    .and_then(|a| a.required.as_ref())
                {
                    out.node_terms.push(required.node_selector_terms.clone());
                }
            }
            None => {
                let class = spec
                    .and_then(|s| s.storage_class_name.as_deref())
                    .unwrap_or_default();
                let delayed = catalog.classes.get(class).is_some_and(|c| {
                    c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
                });
                if !delayed {
                    return Err(REASON_UNBOUND_IMMEDIATE.into());
                }
                out.delayed.push(name.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeSelector, NodeSelectorRequirement, PersistentVolumeClaimSpec,
        PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PodSpec, Volume,
        VolumeNodeAffinity,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod_with_claims(claims: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(
                    claims
                        .iter()
                        .map(|c| Volume {
                            name: c.to_string(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: c.to_string(),
                                read_only: None,
                            }),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn claim(name: &str, class: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                storage_class_name: Some(class.into()),
                volume_name: volume.map(String::from),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn class(name: &str, mode: &str) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            provisioner: "timonel.io/local-path".into(),
            volume_binding_mode: Some(mode.into()),
            ..Default::default()
        }
    }

    fn local_volume(name: &str, node: &str) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "kubernetes.io/hostname".into(),
                                operator: "In".into(),
                                values: Some(vec![node.into()]),
                            }]),
                            match_fields: None,
                        }],
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn claims_resolve_to_node_terms_delayed_claims_or_a_reason() {
        let mut catalog = VolumeCatalog::default();
        assert_eq!(
            resolve(&pod_with_claims(&["data"]), &catalog),
            Err("persistentvolumeclaim \"data\" not found".into())
        );
        catalog.upsert_class(class("local-path", "WaitForFirstConsumer"));
        catalog.upsert_class(class("now", "Immediate"));
        catalog.upsert_claim(claim("data", "local-path", None));
        catalog.upsert_claim(claim("eager", "now", None));
        catalog.upsert_claim(claim("bound", "local-path", Some("pv1")));
        assert_eq!(
            resolve(&pod_with_claims(&["data"]), &catalog),
            Ok(PodVolumes {
                node_terms: vec![],
                delayed: vec!["data".into()]
            })
        );
        assert_eq!(
            resolve(&pod_with_claims(&["eager"]), &catalog),
            Err(REASON_UNBOUND_IMMEDIATE.into())
        );
        assert_eq!(
            resolve(&pod_with_claims(&["bound"]), &catalog),
            Err(REASON_MISSING_VOLUME.into())
        );
        catalog.upsert_volume(local_volume("pv1", "n1"));
        let resolved = resolve(&pod_with_claims(&["bound", "data"]), &catalog).unwrap();
        assert_eq!(resolved.node_terms.len(), 1);
        assert_eq!(resolved.delayed, vec!["data".to_string()]);
        catalog.remove_claim("ns", "data");
        assert!(resolve(&pod_with_claims(&["data"]), &catalog).is_err());
    }
}
