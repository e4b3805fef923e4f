#!/usr/bin/env bash
# Builds the preheat image from Dockerfile without a Docker engine or a
# registry: the local Go toolchain compiles the static binary, buildah puts
# it with the host's CA certificates into a local artifacts image, and
# `buildah bud --build-arg ARTIFACTS=...` builds the Dockerfile's final stage
# from it (the golang build stage is never used, so nothing is pulled).
# Writes an OCI archive, docker/podman/skopeo-loadable:
#
#   tools/image/build.sh [OUT]     # default bin/preheat-image.tar
#   skopeo copy oci-archive:bin/preheat-image.tar docker://REGISTRY/preheat:TAG
#
# Needs buildah (Debian: apt-get install buildah) and ca-certificates; runs
# as root with the vfs storage driver, so no overlay mounts or user
# namespaces are needed. VERSION and REVISION default to git's.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${1:-bin/preheat-image.tar}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
certs=${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}
tag=$(date +%s)-$$
buildah=(buildah --storage-driver vfs)

work=$(mktemp -d)
artifacts=""
cleanup() {
  rm -rf "$work"
  if [ -n "$artifacts" ]; then "${buildah[@]}" rmi -f "$artifacts" >/dev/null 2>&1 || true; fi
  "${buildah[@]}" rmi -f "localhost/preheat:$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$work/out/etc/ssl/certs" "$work/context"
# The same command as the Dockerfile's build stage; -buildvcs=auto wins over
# a GOFLAGS=-buildvcs=false in the environment: the commit is stamped from
# .git when there is one.
CGO_ENABLED=0 go build -trimpath -buildvcs=auto \
  -ldflags "-s -w -X main.version=$version" -o "$work/out/preheat" ./cmd/preheat
cp "$certs" "$work/out/etc/ssl/certs/ca-certificates.crt"

ctr=$("${buildah[@]}" from scratch)
"${buildah[@]}" copy --quiet "$ctr" "$work/out" /out >/dev/null
artifacts="localhost/preheat-artifacts:$tag"
"${buildah[@]}" commit --quiet --rm "$ctr" "$artifacts" >/dev/null

"${buildah[@]}" bud --quiet --isolation chroot --pull-never --layers=false \
  --build-arg "ARTIFACTS=$artifacts" --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -f "$PWD/Dockerfile" -t "localhost/preheat:$tag" "$work/context" >/dev/null

mkdir -p "$(dirname "$out")"
rm -f "$out"
"${buildah[@]}" push --quiet "localhost/preheat:$tag" "oci-archive:$out:preheat:$version"
echo "$out: preheat $version ($revision), $(du -h "$out" | cut -f1)"
