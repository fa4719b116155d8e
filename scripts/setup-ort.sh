#!/usr/bin/env bash
# Fetches libonnxruntime.so.1 from the npm package onnxruntime-node (npm pack only:
# the package's install script downloads CUDA and must never run) into lib/.
set -euo pipefail
VERSION="${ORT_NPM_VERSION:-1.30.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/lib/libonnxruntime.so.1"
stamp="$root/lib/.onnxruntime-node-$VERSION"
if [ -f "$dest" ] && [ -f "$stamp" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "setup-ort: npm is needed to fetch onnxruntime-node (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: fetching onnxruntime-node@$VERSION with npm pack" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$VERSION" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$VERSION.tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
mkdir -p "$root/lib"
install -m 0644 "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$dest"
rm -f "$root"/lib/.onnxruntime-node-*
touch "$stamp"
echo "setup-ort: installed $dest" >&2
