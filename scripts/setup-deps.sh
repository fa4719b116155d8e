#!/usr/bin/env bash
# Installs the Debian packages the cgo build links against, only those
# missing: libjpeg-turbo (DCT-scaled JPEG decoding), libwebp (WebP shrunk
# while decoding) and libheif (HEIC/HEIF and AVIF), plus pkg-config to find
# libheif and libwebp, and heif-enc
# (libheif-examples), which the HEIC/AVIF tests use to make their files.
# Without root or apt-get it says what to install, and that
# `go build -tags nonative` builds without them (JPEG at full size through
# image/jpeg, HEIC and AVIF refused).
set -euo pipefail
need=()
[ -f /usr/include/jpeglib.h ] || [ -f /usr/include/x86_64-linux-gnu/jpeglib.h ] || need+=(libjpeg62-turbo-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists libheif 2>/dev/null || need+=(libheif-dev)
pkg-config --exists libwebp 2>/dev/null || need+=(libwebp-dev)
command -v heif-enc >/dev/null || need+=(libheif-examples)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup-deps: missing ${need[*]}: install them (apt-get install ${need[*]})," >&2
  echo "setup-deps: or build without them: go build -tags nonative ./cmd/prodsearch" >&2
  exit 1
fi
echo "setup-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
