#!/usr/bin/env bash
# Builds timonel and starts a single-node control plane with the embedded SQLite store.
# Data lives in $TIMONEL_DATA_DIR (default ~/.local/share/timonel); the admin kubeconfig is
# written to $TIMONEL_KUBECONFIG (default ~/.kube/timonel.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${TIMONEL_DATA_DIR:-$HOME/.local/share/timonel}
kubeconfig=${TIMONEL_KUBECONFIG:-$HOME/.kube/timonel.yaml}
port=${TIMONEL_PORT:-6443}
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust from https://rustup.rs" >&2
  exit 1
fi
cargo build --release -p timonel
mkdir -p "$(dirname "$kubeconfig")"
echo "starting timonel server (data in $data_dir)"
echo "then, in another shell:  export KUBECONFIG=$kubeconfig; kubectl get namespaces"
exec "${CARGO_TARGET_DIR:-target}/release/timonel" server --data-dir "$data_dir" --https-listen-port "$port" \
  --write-kubeconfig "$kubeconfig" "$@"
