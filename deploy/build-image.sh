#!/usr/bin/env bash
# Build the pycoredns image without a registry: debootstrap a Debian bookworm base, import it into
# buildah, then `buildah bud` the repository's Dockerfile on top of it.
#
#   deploy/build-image.sh [IMAGE]        (default IMAGE=localhost/pycoredns:dev)
#
# Needs root, debootstrap and buildah (Debian packages). Uses the vfs storage driver and chroot
# isolation, which work where overlayfs and runc/crun do not (as on these CI machines).
set -euo pipefail
IMAGE=${1:-localhost/pycoredns:dev}
BASE=localhost/debian-bookworm-base:latest
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
here=$(cd "$(dirname "$0")/.." && pwd)

if ! buildah images --format '{{.Name}}:{{.Tag}}' | grep -qx "$BASE"; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf" 2>/dev/null || true
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  cp -a "$rootfs"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --rm "$ctr" "$BASE" >/dev/null
fi
# Wheels for pycoredns and its dependencies, built with the host's pip (and its index settings).
rm -rf "$here/deploy/wheels"
python3 -m pip wheel -q --wheel-dir "$here/deploy/wheels" "$here"
buildah bud --isolation chroot --build-arg BASE="$BASE" -t "$IMAGE" -f "$here/Dockerfile" "$here"
echo "built $IMAGE"
