#!/usr/bin/env bash
# One-time setup for the f16 tests (tests/f16): Mesa 25 lavapipe (a CPU Vulkan driver WITH shader-f16) extracted
# into a local folder, no system change. The bookworm-backports packages are fetched with a private apt state
# (its own sources list, lists and cache under the target folder), so the machine's sources and packages stay as
# they are. Chromium's bundled Vulkan loader (/usr/lib/chromium/libvulkan.so.1) loads the driver.
#
# Usage: scripts/setup-lavapipe.sh [dir]   (default .cache/lavapipe; quiet and quick when already set up)
# Then:  source <dir>/env.sh   (VK_ICD_FILENAMES + LD_LIBRARY_PATH: Vulkan = lavapipe only, for Dawn in Node)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(mkdir -p "${1:-.cache/lavapipe}" && cd "${1:-.cache/lavapipe}" && pwd)"
MESA_VERSION="25.0.7-2~bpo12+1"
DRM_VERSION="2.4.123-1~bpo12+1"
LIB="$DIR/root/usr/lib/x86_64-linux-gnu"

# Dawn for Node (npm `webgpu`, pinned): from the project's node_modules when it lists it, else a private copy in
# .cache/f16-deps that tests/f16/golden-runner.ts falls back to.
if ! node -e "import('webgpu').then(() => process.exit(0), () => process.exit(1))" 2>/dev/null && [ ! -f .cache/f16-deps/node_modules/webgpu/index.js ]; then
  mkdir -p .cache/f16-deps
  [ -f .cache/f16-deps/package.json ] || echo '{"name":"f16-deps","private":true}' > .cache/f16-deps/package.json
  (cd .cache/f16-deps && npm install --no-audit --no-fund --no-save webgpu@0.6.2 >/dev/null)
fi

if [ -f "$DIR/env.sh" ] && [ -f "$LIB/libvulkan_lvp.so" ]; then exit 0; fi
[ "$(uname -m)" = x86_64 ] || { echo "setup-lavapipe: x86_64 only (got $(uname -m))" >&2; exit 1; }
LOADER=/usr/lib/chromium/libvulkan.so.1
[ -f "$LOADER" ] || { echo "setup-lavapipe: $LOADER missing: install Debian's chromium package first" >&2; exit 1; }

APT="$DIR/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$DIR/debs"
cat > "$APT/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main
SRC
APTOPTS=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=/dev/null" -o "Dir::State::Lists=$APT/lists"
  -o "Dir::Cache=$APT/cache" -o "Dir::State::Status=/var/lib/dpkg/status" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
echo "setup-lavapipe: fetching Mesa $MESA_VERSION (bookworm-backports) into $DIR" >&2
apt-get "${APTOPTS[@]}" update -qq
# lavapipe 25 + the newer libdrm it needs; then the bookworm libraries it links against that a chromium-only machine
# may lack (extracted, never installed; a library the system already has is deleted again so the system's copy
# is the one loaded).
MESA=("mesa-vulkan-drivers=$MESA_VERSION" "libdrm2=$DRM_VERSION" "libdrm-amdgpu1=$DRM_VERSION")
DEPS=(libllvm15 libz3-4 libedit2 libbsd0 libmd0 libxml2 libicu72 libtinfo6 libsensors5 libelf1 libzstd1 libexpat1
  libwayland-client0 libxcb1 libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0
  libx11-xcb1 libx11-6 libxau6 libxdmcp6 libxshmfence1 libffi8)
mkdir -p "$DIR/debs/mesa" "$DIR/debs/deps"
(cd "$DIR/debs/mesa" && apt-get "${APTOPTS[@]}" download "${MESA[@]}" >/dev/null)
(cd "$DIR/debs/deps" && apt-get "${APTOPTS[@]}" download "${DEPS[@]}" >/dev/null)
rm -rf "$DIR/root" "$DIR/deps"
for d in "$DIR"/debs/mesa/*.deb; do dpkg-deb -x "$d" "$DIR/root"; done
for d in "$DIR"/debs/deps/*.deb; do dpkg-deb -x "$d" "$DIR/deps"; done
DEPLIB="$DIR/deps/usr/lib/x86_64-linux-gnu"
mkdir -p "$DEPLIB"
find "$DIR/deps/lib" -name '*.so*' -exec mv -t "$DEPLIB" {} + 2>/dev/null || true
for f in "$DEPLIB"/*.so.*; do
  [ -e "$f" ] || continue
  if ldconfig -p | grep -q "^[[:space:]]*$(basename "$f") "; then rm -f "$f"; fi
done
[ -f "$LIB/libvulkan_lvp.so" ] || { echo "setup-lavapipe: libvulkan_lvp.so not in the extracted packages" >&2; exit 1; }
missing=$(LD_LIBRARY_PATH="$LIB:$DEPLIB" ldd "$LIB/libvulkan_lvp.so" | grep 'not found' || true)
[ -z "$missing" ] || { echo "setup-lavapipe: unresolved libraries:"$'\n'"$missing" >&2; exit 1; }

cat > "$DIR/lvp25_icd.json" <<ICD
{"file_format_version":"1.0.1","ICD":{"library_path":"$LIB/libvulkan_lvp.so","api_version":"1.4.0"}}
ICD
cat > "$DIR/env.sh" <<ENV
# Vulkan = Mesa $MESA_VERSION lavapipe only (shader-f16), loaded by Chromium's Vulkan loader.
export VK_ICD_FILENAMES="$DIR/lvp25_icd.json"
export VK_DRIVER_FILES="$DIR/lvp25_icd.json"
export LD_LIBRARY_PATH="/usr/lib/chromium:$LIB:$DEPLIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export FLUX_LAVAPIPE_DIR="$DIR"
ENV
rm -rf "$APT" "$DIR/debs"
echo "setup-lavapipe: ready; source $DIR/env.sh" >&2
