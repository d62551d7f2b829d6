#!/usr/bin/env bash
# Builds a busybox image as an OCI image layout archive from Debian's busybox-static, with
# only tar and sha256sum (no registry, no image tools), for the node agent's tests:
#   scripts/build-busybox-image.sh OUT.tar [REFERENCE]   (default docker.io/library/busybox:latest)
# One uncompressed layer: /bin/busybox, a symlink per applet, /etc/passwd and /etc/group,
# /tmp. The index entry carries both `io.containerd.image.name` (the full reference) and
# `org.opencontainers.image.ref.name` (the tag), as containerd and Docker export them.
set -euo pipefail

out=${1:?usage: build-busybox-image.sh OUT.tar [REFERENCE]}
reference=${2:-docker.io/library/busybox:latest}
last_component=${reference##*/}
if [[ $last_component == *:* ]]; then tag=${last_component##*:}; else tag=latest; reference=$reference:latest; fi

if [[ ! -x /bin/busybox ]]; then
    sudo_cmd=()
    if [[ "$(id -u)" != 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -q >&2
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >&2
fi

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7l) arch=arm ;;
    ppc64le) arch=ppc64le ;;
    s390x) arch=s390x ;;
    riscv64) arch=riscv64 ;;
    *) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list-full); do
    [[ -e $rootfs/$applet || -L $rootfs/$applet ]] && continue
    ln -s /bin/busybox "$rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

blobs=$work/layout/blobs/sha256
mkdir -p "$blobs"

# Reproducible layer: sorted, root-owned, fixed times.
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 --format=gnu \
    -C "$rootfs" -cf "$work/layer.tar" .

# Moves a file into blobs/ under its digest; prints "DIGEST SIZE".
add_blob() {
    local digest size
    digest=$(sha256sum "$1" | cut -d' ' -f1)
    size=$(wc -c <"$1")
    mv "$1" "$blobs/$digest"
    echo "sha256:$digest $size"
}

read -r layer_digest layer_size < <(add_blob "$work/layer.tar")

cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["$layer_digest"]},"history":[{"created_by":"scripts/build-busybox-image.sh"}]}
JSON
read -r config_digest config_size < <(add_blob "$work/config.json")

cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$layer_digest","size":$layer_size}]}
JSON
read -r manifest_digest manifest_size < <(add_blob "$work/manifest.json")

cat >"$work/layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$manifest_digest","size":$manifest_size,"annotations":{"io.containerd.image.name":"$reference","org.opencontainers.image.ref.name":"$tag"},"platform":{"architecture":"$arch","os":"linux"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"

tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/layout" \
    -cf "$out" oci-layout index.json blobs
echo "$out: $reference ($config_digest)"
