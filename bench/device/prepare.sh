#!/usr/bin/env bash
# Build the carry folder `.device/` for bench/device/run-h200.sh (run here, on the CPU machine, once):
#   .device/device.mjs, .device/cli.mjs  esbuild bundles of bench/device/device-run.ts and the CLI (src/cli/main.ts)
#   .device/runtime.tar.xz                node (this machine's binary, in case the GPU image has none) and the few
#                                         packages the bundles load at run time: onnxruntime-node (linux-x64 only,
#                                         it contains the WebGPU EP), onnxruntime-common, onnx-proto (+ protobufjs, long)
# The working tree (~9 MB) plus .device must stay under the device tool's 64 MiB carry limit; this checks it.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device && mkdir -p .device
# ES module bundles (top-level await); `require` for the CommonJS packages. run-h200.sh copies them next to the
# unpacked node_modules, where their imports resolve.
bundle() {
  npx esbuild "$1" --bundle --platform=node --format=esm --target=node20 --external:onnxruntime-node --external:onnx-proto \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" --outfile="$2" --log-level=warning
}
bundle bench/device/device-run.ts .device/device.mjs
bundle src/cli/main.ts .device/cli.mjs
stage=$(mktemp -d)
mkdir -p "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux" "$stage/bin"
cp /usr/bin/node "$stage/bin/node"
cp -r node_modules/onnxruntime-node/{package.json,dist,lib} "$stage/node_modules/onnxruntime-node/"
cp -r node_modules/onnxruntime-node/bin/napi-v6/linux/x64 "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp -r node_modules/onnxruntime-common "$stage/node_modules/"
mkdir -p "$stage/node_modules/onnx-proto"
cp -r node_modules/onnx-proto/{package.json,dist} "$stage/node_modules/onnx-proto/"
for p in protobufjs long; do
  src=node_modules/onnx-proto/node_modules/$p; [ -d "$src" ] || src=node_modules/$p
  mkdir -p "$stage/node_modules/onnx-proto/node_modules/$p"
  (cd "$src" && tar cf - --exclude='*.d.ts' --exclude=cli --exclude=docs --exclude='*.md' .) | tar xf - -C "$stage/node_modules/onnx-proto/node_modules/$p"
done
for d in node_modules/onnx-proto/node_modules/protobufjs/node_modules/*; do [ -d "$d" ] && cp -r "$d" "$stage/node_modules/onnx-proto/node_modules/" || true; done
cp -r node_modules/@protobufjs "$stage/node_modules/onnx-proto/node_modules/" 2>/dev/null || true
tar -C "$stage" -cf - . | xz -T0 -6 > .device/runtime.tar.xz
# The Vulkan loader, for an image without one (run-h200.sh unpacks it only then); NVIDIA's ICD comes with the driver.
mkdir -p .device/gl && (cd .device/gl && apt-get download libvulkan1 >/dev/null) || echo "warning: could not download libvulkan1 (needed only if the GPU image lacks libvulkan.so.1)"
rm -rf "$stage"
tree_bytes=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | awk '/total$/ {s+=$1} END {print s}')
carry_bytes=$(du -cb .device | tail -1 | cut -f1)
echo "working tree $((tree_bytes / 1048576)) MiB + .device $((carry_bytes / 1048576)) MiB (limit 64 MiB)"
[ $((tree_bytes + carry_bytes)) -lt $((64 * 1048576)) ] || { echo "over the 64 MiB carry limit" >&2; exit 1; }
