//! Label selectors, node selector terms and taint tolerations, with upstream semantics.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

/// A compiled metav1.LabelSelector. A missing or invalid selector matches nothing; an empty one
/// matches everything.
#[derive(Clone, Debug)]
pub struct Selector {
    requirements: Vec<Requirement>,
    matches_nothing: bool,
}

impl Selector {
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            matches_nothing: true,
        }
    }

    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Self {
        let Some(selector) = selector else {
            return Selector::nothing();
        };
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in selector.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return Selector::nothing(),
            };
            requirements.push(Requirement {
                key: e.key.clone(),
                op,
                values: e.values.clone().unwrap_or_default(),
            });
        }
        Selector {
            requirements,
            matches_nothing: false,
        }
    }

    /// Adds `key In (value)` (or NotIn) taken from the pod's own labels, for matchLabelKeys and
    /// mismatchLabelKeys; keys absent from the pod's labels are ignored as upstream does.
    pub fn add_label_keys(&mut self, keys: &[String], own_labels: Option<&Labels>, mismatch: bool) {
        for key in keys {
            if let Some(value) = own_labels.and_then(|l| l.get(key)) {
                self.requirements.push(Requirement {
                    key: key.clone(),
                    op: if mismatch { Op::NotIn } else { Op::In },
                    values: vec![value.clone()],
                });
            }
        }
    }

    pub fn matches(&self, labels: Option<&Labels>) -> bool {
        if self.matches_nothing {
            return false;
        }
        self.requirements.iter().all(|r| {
            let value = labels.and_then(|l| l.get(&r.key));
            match r.op {
                Op::In => value.is_some_and(|v| r.values.contains(v)),
                Op::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// Whether a node matches one NodeSelectorTerm; a term without requirements matches nothing.
pub fn node_matches_term(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: Option<&Labels>,
) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let expressions_match = expressions.iter().all(|e| {
        let value = labels.and_then(|l| l.get(&e.key));
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            op @ ("Gt" | "Lt") => {
                let (Some(label), [bound]) = (value, values) else {
                    return false;
                };
                match (label.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(l), Ok(b)) => {
                        if op == "Gt" {
                            l > b
                        } else {
                            l < b
                        }
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    });
    // Only metadata.name is a supported field, with In/NotIn.
    let fields_match = fields.iter().all(|f| {
        let values = f.values.as_deref().unwrap_or_default();
        f.key == "metadata.name"
            && match f.operator.as_str() {
                "In" => values.iter().any(|v| v == node_name),
                "NotIn" => !values.iter().any(|v| v == node_name),
                _ => false,
            }
    });
    expressions_match && fields_match
}

/// Terms are ORed; an empty list matches nothing.
pub fn node_matches_terms(
    terms: &[NodeSelectorTerm],
    node_name: &str,
    labels: Option<&Labels>,
) -> bool {
    terms
        .iter()
        .any(|t| node_matches_term(t, node_name, labels))
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSelectorRequirement;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_selector_operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let term = |e: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: Some(e),
            match_fields: None,
        };
        assert!(node_matches_term(
            &term(vec![expr("zone", "In", &["a", "b"])]),
            "n",
            Some(&l)
        ));
        assert!(!node_matches_term(
            &term(vec![expr("zone", "NotIn", &["a"])]),
            "n",
            Some(&l)
        ));
        assert!(node_matches_term(
            &term(vec![expr("gpu", "DoesNotExist", &[])]),
            "n",
            Some(&l)
        ));
        assert!(!node_matches_term(
            &term(vec![expr("gpu", "Exists", &[])]),
            "n",
            Some(&l)
        ));
        assert!(node_matches_term(
            &term(vec![expr("cores", "Gt", &["4"])]),
            "n",
            Some(&l)
        ));
        assert!(!node_matches_term(
            &term(vec![expr("cores", "Lt", &["4"])]),
            "n",
            Some(&l)
        ));
        assert!(!node_matches_term(
            &term(vec![expr("zone", "Gt", &["4"])]),
            "n",
            Some(&l)
        ));
        assert!(
            !node_matches_term(&term(vec![]), "n", Some(&l)),
            "empty term matches nothing"
        );
        let fields = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![expr("metadata.name", "In", &["n1"])]),
        };
        assert!(node_matches_term(&fields, "n1", None));
        assert!(!node_matches_term(&fields, "n2", None));
        assert!(!node_matches_terms(&[], "n1", None));
    }

    #[test]
    fn label_selector_semantics() {
        assert!(!Selector::from_label_selector(None).matches(Some(&labels(&[("a", "b")]))));
        assert!(Selector::from_label_selector(Some(&LabelSelector::default())).matches(None));
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let s = Selector::from_label_selector(Some(&sel));
        assert!(s.matches(Some(&labels(&[("app", "web")]))));
        assert!(!s.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!s.matches(Some(&labels(&[("app", "api")]))));
    }

    #[test]
    fn toleration_matching() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let tol =
            |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| {
                Toleration {
                    key: key.map(Into::into),
                    operator: op.map(Into::into),
                    value: value.map(Into::into),
                    effect: effect.map(Into::into),
                    toleration_seconds: None,
                }
            };
        assert!(tolerates(
            &tol(Some("dedicated"), None, Some("gpu"), None),
            &taint
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Equal"), Some("cpu"), None),
            &taint
        ));
        assert!(tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoSchedule")),
            &taint
        ));
        assert!(!tolerates(
            &tol(Some("dedicated"), Some("Exists"), None, Some("NoExecute")),
            &taint
        ));
        assert!(
            tolerates(&tol(None, Some("Exists"), None, None), &taint),
            "empty key + Exists tolerates all"
        );
        assert!(!tolerates(
            &tol(Some("other"), Some("Exists"), None, None),
            &taint
        ));
    }
}
