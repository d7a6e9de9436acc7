#!/usr/bin/env bash
# Build the pycoredns image without a registry: debootstrap a Debian bookworm base, import it into
# buildah, then `buildah bud` the repository's Dockerfile on top of it.
#
#   deploy/build-image.sh [IMAGE] [NODECACHE]   (default IMAGE=localhost/pycoredns:dev, NODECACHE=0;
#                                                NODECACHE=1 adds ip and iptables for -localip)
#
# Needs root, debootstrap and buildah (Debian packages). Uses the vfs storage driver and chroot
# isolation, which work where overlayfs and runc/crun do not (as on these CI machines). Prints the
# image's uncompressed size at the end.
set -euo pipefail
IMAGE=${1:-localhost/pycoredns:dev}
NODECACHE=${2:-0}
BASE=localhost/debian-bookworm-base:latest
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! buildah images --format '{{.Name}}:{{.Tag}}' | grep -qx "$BASE"; then
  debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >/dev/null
  cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf" 2>/dev/null || true
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  cp -a "$work/rootfs"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --rm "$ctr" "$BASE" >/dev/null
  rm -rf "$work/rootfs"
fi
# Wheels for pycoredns and its dependencies, built with the host's pip (and its index settings) from a
# copy of the sources, so no build/ directory is left (and later reused) in the checkout.
mkdir -p "$work/src"
cp -a "$here/pyproject.toml" "$here/setup.py" "$here/README.md" "$here/pycoredns" "$here/plugins" "$work/src/"
rm -rf "$here/deploy/wheels"
python3 -m pip wheel -q --disable-pip-version-check --wheel-dir "$here/deploy/wheels" "$work/src"
buildah bud --isolation chroot --layers=false --build-arg BASE="$BASE" --build-arg NODECACHE="$NODECACHE" \
  -t "$IMAGE" -f "$here/Dockerfile" "$here"
echo "built $IMAGE ($(buildah images --format '{{.Size}}' "$IMAGE") uncompressed)"
