//! OpenAPI schemas of the Kubernetes kinds: strict field checking, OpenAPI v2/v3 documents, explain.
