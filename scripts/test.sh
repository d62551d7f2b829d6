#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration, and the end-to-end suite that drives
# the real kubectl v1.35 and helm v4 (fetched once into $HOME/.cache/timonel/kube-tools).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh -p timonel --test e2e_kubectl`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-kube-tools.sh >/dev/null

# Debug builds: on 2 cores, building the release profile (thin LTO) costs more than the
# tests win from optimisation; dependencies are still built at opt-level 1 (Cargo.toml).
if (($# == 0)); then
    set -- --workspace
fi
exec cargo test --no-fail-fast "$@"
