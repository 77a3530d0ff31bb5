#!/usr/bin/env bash
# Set up everything a fresh machine needs and run all tests: types, unit + CLI (Node), browser e2e (Chromium + WebGPU).
set -euo pipefail
cd "$(dirname "$0")/.."

# Browser tests use Debian's Chromium (Playwright cannot download its own browser here).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_PATH:-}" ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# onnxruntime-node's postinstall would try to download CUDA (no network); its CPU/WebGPU binary ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
npm test
