//! Shared by the in-process API server tests: a ready server state over the in-memory store,
//! with one admin bearer token.

use std::sync::Arc;

use timonel_apiserver::server::Authenticator;
use timonel_apiserver::{State, User};

pub const TOKEN: &str = "test-token";

/// A bootstrapped, ready server state whose only credential is `TOKEN` (system:masters).
pub async fn state() -> Arc<State> {
    let store = Arc::new(timonel_store::memory::MemoryStore::new());
    let auth = Authenticator {
        tokens: vec![(
            TOKEN.to_string(),
            User {
                name: "tester".into(),
                groups: vec!["system:masters".into()],
            },
        )],
    };
    let state = State::new(store, auth).await.unwrap();
    timonel_apiserver::admission::bootstrap(&state)
        .await
        .unwrap();
    state
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    state
}
