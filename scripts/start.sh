#!/usr/bin/env bash
# Set up (npm ci when needed) and run the app at http://127.0.0.1:5173 — works offline with the embedded test pack.
set -euo pipefail
cd "$(dirname "$0")/.."
# onnxruntime-node's postinstall would try to download CUDA (no network); its CPU/WebGPU binary ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci
fi
exec npm start -- "$@"
