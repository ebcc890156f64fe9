#!/usr/bin/env bash
# Builds the action's image from a slipway binary built on this machine, with no registry
# and no network but Debian's mirror:
#   1. the base image slipway-test-base:bookworm, made once with debootstrap (minbase +
#      git + ca-certificates) and `docker import` (skipped when it already exists);
#   2. `docker build --target prebuilt` of the repository's Dockerfile on that base, with
#      the classic builder, from a context holding only the Dockerfile and the binary.
# Usage: build_image.sh BINARY TAG
set -euo pipefail

binary=$1
tag=$2
base=slipway-test-base:bookworm
root=$(cd "$(dirname "$0")/../.." && pwd)

if ! docker image inspect "$base" >/dev/null 2>&1; then
    # The mirror apt already uses on this machine.
    mirror=$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    dir=$(mktemp -d /tmp/slipway-base-XXXXXX)
    echo "debootstrap bookworm from $mirror into $dir" >&2
    debootstrap --variant=minbase --include=git,ca-certificates bookworm "$dir" "$mirror" >&2
    # apt's lists and caches, docs and translations are not needed at run time.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
        "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/locale "$dir"/usr/share/info
    tar -C "$dir" -c . | docker import - "$base" >&2
    rm -rf "$dir"
fi

context=$(mktemp -d /tmp/slipway-image-XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$root/Dockerfile" "$context/Dockerfile"
cp "$binary" "$context/slipway"
DOCKER_BUILDKIT=0 docker build --quiet --target prebuilt \
    --build-arg RUNTIME_BASE="$base" -t "$tag" "$context" >&2
