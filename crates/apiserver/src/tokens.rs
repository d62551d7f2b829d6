//! Service account tokens: the TokenRequest API (`POST serviceaccounts/{name}/token`, what
//! `kubectl create token` and the kubelet's projected tokens use) and the authenticator that
//! accepts those tokens as `system:serviceaccount:<namespace>:<name>`.
//!
//! Tokens are JWTs signed ES256 with the cluster's service account key, carrying upstream's
//! claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and the private `kubernetes.io`
//! claim naming the namespace, the service account and the bound pod). As upstream, a token is
//! accepted only while its service account (and the pod it is bound to) still exists with the
//! UID it names, so deleting either revokes it.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use timonel_api::status::{ApiError, Cause, Resource};

use crate::body;
use crate::rest::Request;
use crate::server::{Reply, State, User};

/// The issuer and the audience of the API server, as upstream's defaults (and k3s's) name them.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
pub const API_AUDIENCES: &[&str] = &["https://kubernetes.default.svc.cluster.local"];
/// TokenRequest's default `expirationSeconds`, and its floor.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

const SERVICE_ACCOUNTS: Resource = Resource {
    group: "",
    plural: "serviceaccounts",
};
const PODS: Resource = Resource {
    group: "",
    plural: "pods",
};

/// Signs and verifies service account tokens with one ECDSA P-256 key.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl TokenSigner {
    /// The signer of a PKCS#8 DER key (`ClusterPki::service_account_key`).
    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<TokenSigner> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| anyhow::anyhow!("the service account signing key: {e}"))?;
        // Upstream's key ID: the public key's SHA-256, unpadded base64url.
        let key_id = {
            use sha2::Digest;
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key.public_key().as_ref()))
        };
        Ok(TokenSigner { key, key_id, rng })
    }

    /// A signed JWT of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing with a valid key cannot fail");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// The claims of a token this signer made that is valid at `now` (unix seconds) for one
    /// of the API audiences; `None` for anything else.
    pub fn verify(&self, token: &str, now: i64) -> Option<Value> {
        let mut parts = token.split('.');
        let (raw_header, raw_claims, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw_header).ok()?).ok()?;
        if header["alg"] != "ES256" {
            return None;
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        public
            .verify(
                format!("{raw_header}.{raw_claims}").as_bytes(),
                &URL_SAFE_NO_PAD.decode(sig).ok()?,
            )
            .ok()?;
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw_claims).ok()?).ok()?;
        let in_time = claims["exp"].as_i64().is_some_and(|exp| now < exp)
            && claims["nbf"].as_i64().is_none_or(|nbf| now >= nbf);
        let for_us = claims["aud"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a.as_str().is_some_and(|a| API_AUDIENCES.contains(&a)));
        (claims["iss"] == ISSUER && in_time && for_us).then_some(claims)
    }
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`.
pub async fn create_token(state: &Arc<State>, req: &Request<'_>) -> Result<Reply, ApiError> {
    let Some(signer) = state.token_signer.get() else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let namespace = req.namespace().unwrap_or_default().to_string();
    let name = req.path.name.clone().unwrap_or_default();
    let request = body::decode_object(req.content_type, req.body)?;
    let account = state
        .cache
        .get(&format!(
            "/registry/core/serviceaccounts/{namespace}/{name}"
        ))
        .ok_or_else(|| ApiError::not_found(SERVICE_ACCOUNTS, &name))?
        .value();
    let spec = &request["spec"];
    let expiration = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            "spec.expirationSeconds",
            format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes"),
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            &name,
            "spec.expirationSeconds",
            format!(
                "Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"
            ),
        ));
    }
    let audiences: Vec<String> = match spec["audiences"].as_array() {
        Some(list) if !list.is_empty() => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => API_AUDIENCES.iter().map(|a| a.to_string()).collect(),
    };

    let mut private = json!({
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
    });
    let bound = &spec["boundObjectRef"];
    if bound.is_object() {
        let kind = bound["kind"].as_str().unwrap_or_default();
        let bound_name = bound["name"].as_str().unwrap_or_default();
        if kind != "Pod" && kind != "Secret" && kind != "Node" {
            return Err(invalid(
                &name,
                "spec.boundObjectRef.kind",
                format!(
                    "Unsupported value: \"{kind}\": supported values: \"Pod\", \"Secret\", \"Node\""
                ),
            ));
        }
        let (key, resource) = match kind {
            "Pod" => (
                format!("/registry/core/pods/{namespace}/{bound_name}"),
                PODS,
            ),
            "Secret" => (
                format!("/registry/core/secrets/{namespace}/{bound_name}"),
                Resource {
                    group: "",
                    plural: "secrets",
                },
            ),
            _ => (
                format!("/registry/core/nodes/{bound_name}"),
                Resource {
                    group: "",
                    plural: "nodes",
                },
            ),
        };
        let object = state
            .cache
            .get(&key)
            .ok_or_else(|| ApiError::not_found(resource, bound_name))?
            .value();
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && wanted != uid
        {
            return Err(ApiError::conflict(
                resource,
                bound_name,
                &format!(
                    "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        private[kind.to_lowercase()] = json!({"name": bound_name, "uid": uid});
        if kind == "Pod"
            && let Some(node) = object["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
            && let Some(node_object) = state.cache.get(&format!("/registry/core/nodes/{node}"))
        {
            private["node"] = json!({"name": node, "uid": node_object.value()["metadata"]["uid"]});
        }
    }
    let now = now_unix();
    let claims = json!({
        "aud": audiences,
        "exp": now + expiration,
        "iat": now,
        "iss": ISSUER,
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": private,
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    let token = signer.sign(&claims);
    let expires = chrono::DateTime::from_timestamp(now + expiration, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut spec = spec.clone();
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(expiration);
    Ok(Reply::json(
        StatusCode::CREATED,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expires},
        }),
    ))
}

/// The service account a bearer token names, if it is one of ours, in time, and everything it
/// is bound to still exists with the UID it records.
pub fn authenticate(state: &State, authorization: Option<&str>) -> Option<User> {
    let signer = state.token_signer.get()?;
    let token = authorization?.strip_prefix("Bearer ")?.trim();
    let claims = signer.verify(token, now_unix())?;
    let private = &claims["kubernetes.io"];
    let namespace = private["namespace"].as_str()?;
    let account = private["serviceaccount"]["name"].as_str()?;
    let still_there = |key: String, claim: &Value| {
        state
            .cache
            .get(&key)
            .is_some_and(|o| o.value()["metadata"]["uid"] == claim["uid"])
    };
    if !still_there(
        format!("/registry/core/serviceaccounts/{namespace}/{account}"),
        &private["serviceaccount"],
    ) {
        return None;
    }
    for (kind, prefix) in [("pod", "pods"), ("secret", "secrets")] {
        let bound = &private[kind];
        if let Some(name) = bound["name"].as_str()
            && !still_there(format!("/registry/core/{prefix}/{namespace}/{name}"), bound)
        {
            return None;
        }
    }
    Some(User {
        name: format!("system:serviceaccount:{namespace}:{account}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        let der = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .unwrap();
        TokenSigner::from_pkcs8(der.as_ref()).unwrap()
    }

    fn claims(exp: i64) -> Value {
        json!({"iss": ISSUER, "aud": API_AUDIENCES, "exp": exp, "nbf": 100, "sub": "x"})
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let signer = signer();
        let token = signer.sign(&claims(1000));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(signer.verify(&token, 500).unwrap()["sub"], "x");
        assert!(signer.verify(&token, 1000).is_none(), "expired");
        assert!(signer.verify(&token, 99).is_none(), "not yet valid");
    }

    #[test]
    fn tampered_foreign_or_misaddressed_tokens_are_refused() {
        let signer = signer();
        let token = signer.sign(&claims(1000));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            json!({"iss": ISSUER, "aud": API_AUDIENCES, "exp": 1000, "sub": "admin"}).to_string(),
        );
        parts[1] = &forged;
        assert!(signer.verify(&parts.join("."), 500).is_none(), "tampered");
        assert!(
            self::signer().verify(&token, 500).is_none(),
            "another key's"
        );
        let elsewhere = signer.sign(&json!({"iss": ISSUER, "aud": ["vault"], "exp": 1000}));
        assert!(signer.verify(&elsewhere, 500).is_none(), "another audience");
        let other_issuer = signer.sign(&json!({"iss": "me", "aud": API_AUDIENCES, "exp": 1000}));
        assert!(
            signer.verify(&other_issuer, 500).is_none(),
            "another issuer"
        );
        assert!(signer.verify("not-a-jwt", 500).is_none());
    }
}
