#!/usr/bin/env bash
# Builds timonel and starts a single-node cluster: the control plane over the embedded SQLite
# store and the node agent that runs pods as containers on this machine (needs root).
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
if [[ "$(id -u)" != 0 ]]; then
  echo "the node agent runs containers (namespaces, cgroups, mounts): run as root, e.g. sudo -E $0" >&2
  exit 1
fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
  echo "building needs libseccomp and pkg-config: apt-get install -y libseccomp-dev pkg-config" >&2
  exit 1
fi
cargo build --release -p timonel
# A busybox image for offline use (`kubectl run x --image=busybox:1.36`), dropped where the
# agent imports tarballs at start.
if command -v busybox >/dev/null && [[ ! -e "$data_dir/agent/images/busybox.tar" ]]; then
  mkdir -p "$data_dir/agent/images"
  scripts/build-busybox-image.sh "$data_dir/agent/images/busybox.tar" docker.io/library/busybox:1.36 >/dev/null
fi
mkdir -p "$(dirname "$kubeconfig")"
echo "starting timonel server (data in $data_dir)"
echo "then, in another shell:  export KUBECONFIG=$kubeconfig; kubectl get namespaces"
exec "${CARGO_TARGET_DIR:-target}/release/timonel" server --data-dir "$data_dir" --https-listen-port "$port" \
  --write-kubeconfig "$kubeconfig" "$@"
