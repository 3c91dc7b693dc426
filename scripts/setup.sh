#!/usr/bin/env bash
# One idempotent set-up for `make demo` and `make test` on Debian 12 x86_64:
# system packages, the ONNX Runtime C library, the detector model, the demo
# footage, and the console's browser test (Chromium, playwright-core). With
# --bench (`make bench`), also ONNX Runtime with OpenVINO and the INT8 model.
# With --aarch64 (`make aarch64`, `make test`), also what builds for aarch64
# boxes here and runs them under emulation: Debian's cross tools and arm64
# libraries, qemu-user, and the aarch64 ONNX Runtime.
# Everything downloaded lands under .cache/ (git-ignored). A run with
# everything present only verifies checksums and takes seconds.
#
# Environment:
#   XL_MODEL_CACHE_DIR  where models/fetch.sh looks for a ready model
#                       (default ../shared/models beside the repo)
set -euEo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=$ROOT/.cache

# GStreamer for the camera pipelines and the demo's RTSP server, Mosquitto
# for tests against a real broker, Chromium (and a CJK font for its
# screenshots) for the console's browser test, PostgreSQL for the center's
# store on PostgreSQL (tests run servers of their own from its binaries), SIPp
# (sip-tester) as the upper GB/T 28181 platform of the center's SIP tests.
# python3-venv/pip and nodejs/npm are added below only when the machine lacks
# them (pyenv's CPython has both; a Node.js already installed is kept).
APT_PACKAGES=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  mosquitto mosquitto-clients
  postgresql
  chromium fonts-droid-fallback
  systemd curl
  sip-tester
)

# The console's browser test (tests/console.rs runs tests/browser/console.mjs):
# playwright-core from npm, pinned by package-lock.json, driving Debian's
# Chromium (it downloads no browser). node_modules is installed again when
# package.json or package-lock.json change.
BROWSER_DIR=$ROOT/tests/browser
BROWSER_STAMP=$BROWSER_DIR/node_modules/.xl-installed
NODE_MIN_MAJOR=18

# ONNX Runtime has no Debian package; its PyPI wheel carries the plain C library.
ORT_VERSION=1.31.1
ORT_WHEEL=onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_LIB=$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION
ORT_LIB_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3

# For aarch64 boxes (`--aarch64`). Rust's standard library for aarch64 comes from Debian
# (rustc-web, the Rust Debian keeps current for its browsers, with libstd-rust-web-dev:arm64)
# rather than from rustup's own server; the arm64 GStreamer and C libraries come through
# multiarch. qemu-user 8.2 or newer: older ones show the host's /proc/cpuinfo to the emulated
# program, and ONNX Runtime's CPU detection then crashes (Debian 12 has 7.2, its backports 10.0).
AARCH64_APT_PACKAGES=(
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  rustc-web libstd-rust-web-dev:arm64
  libgstreamer1.0-dev:arm64
  gstreamer1.0-plugins-base:arm64 gstreamer1.0-plugins-good:arm64
  libavcodec59:arm64 libavfilter8:arm64 libavformat59:arm64 libavutil57:arm64
)
AARCH64_RUSTC=/usr/bin/rustc
# Two packages of Debian 12 are not Multi-Arch: same, so their arm64 and amd64 packages exclude
# each other, and the x86_64 build and tests need the amd64 ones. What the aarch64 agent takes
# from them is made here instead. From libgstreamer-plugins-base1.0-dev: the pkg-config files of
# the libraries it links and their unversioned links, from the amd64 files, pointing at the
# arm64 libraries. From gstreamer1.0-libav (the decoders): its arm64 plugin, taken out of the
# package, its libraries installed (AARCH64_APT_PACKAGES); the emulated tests find it by
# GST_PLUGIN_PATH.
AARCH64_DIR=$CACHE/aarch64
AARCH64_PLUGINS_BASE=(gstreamer-app-1.0:gstapp-1.0 gstreamer-video-1.0:gstvideo-1.0)
AARCH64_LIBAV=$AARCH64_DIR/gstreamer-1.0/libgstlibav.so
QEMU_MIN=8.2
ORT_AARCH64_WHEEL=onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_aarch64.whl
ORT_AARCH64_WHEEL_SHA256=da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3
ORT_AARCH64_LIB=$CACHE/onnxruntime-aarch64/libonnxruntime.so.$ORT_VERSION
ORT_AARCH64_LIB_SHA256=8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467

# For `make bench` only (`--bench`): ONNX Runtime built with Intel's OpenVINO, whose PyPI
# wheel carries its own ONNX Runtime (1.24.1) and the OpenVINO libraries it needs to run on
# the CPU; and the INT8 variant of the model (models/quantize.sh).
OV_VERSION=1.24.1
OV_WHEEL=onnxruntime_openvino-$OV_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl
OV_WHEEL_SHA256=3007c803634cc69c6d52af1dea7ce729d9bb62b9a11070fd2f959119199007a8
OV_DIR=$CACHE/onnxruntime-openvino
BENCH_VENV=$CACHE/venv-bench
BENCH_REQUIREMENTS=$ROOT/benches/requirements.txt
OV_FILES=(
  libonnxruntime.so.$OV_VERSION libonnxruntime_providers_shared.so
  libonnxruntime_providers_openvino.so libopenvino.so.2541 libopenvino_onnx_frontend.so.2541
  libopenvino_intel_cpu_plugin.so libtbb.so.12
)

# PETS2009 S2.L1 as shipped in Debian's opencv-doc (768x576, 10 fps, 795 frames).
FOOTAGE=$CACHE/footage/vtest.avi
FOOTAGE_SHA256=45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf
FOOTAGE_IN_DEB=./usr/share/doc/opencv-doc/examples/data/vtest.avi

STEP=setup
HINT=""
MAIN_PID=$BASHPID

# --- helpers -----------------------------------------------------------------

us_now() { local t=$EPOCHREALTIME; echo "${t//[.,]/}"; }
elapsed() { local us=$(($(us_now) - $1)); printf '%d.%d s' $((us / 1000000)) $((us / 100000 % 10)); }

fail() {
  printf 'setup: FAILED in step "%s": %s\n' "$STEP" "$*" >&2
  exit 1
}

# Any unexpected failing command: name the step and what to try. Only the main
# shell reports, so a failure inside $(...) is not reported twice.
on_err() {
  [[ $BASHPID == "$MAIN_PID" ]] || return 0
  printf 'setup: FAILED in step "%s" (line %s: exit %s)%s\n' "$STEP" "$2" "$1" "${HINT:+ — $HINT}" >&2
}
trap 'on_err $? $LINENO' ERR

# Temp dirs live under .cache/tmp so that a final `mv` is an atomic rename on
# the same file system; their names carry our pid so a later run can tell a
# dead run's leftovers from a live one's.
new_tmp() { mkdir -p "$CACHE/tmp" && mktemp -d "$CACHE/tmp/$1.$MAIN_PID.XXXXXX"; }
cleanup() { rm -rf "$CACHE"/tmp/*."$MAIN_PID".* 2>/dev/null || true; }
clean_stale_tmp() {
  local d pid
  for d in "$CACHE"/tmp/*.*.*; do
    [[ -e $d ]] || continue
    pid=${d#"$CACHE"/tmp/*.}; pid=${pid%%.*}
    [[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -rf "$d"
  done
  return 0
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
has_sha256() { [[ -f $1 ]] && [[ $(sha256_of "$1") == "$2" ]]; }

# Prints the packages among "$@" that are not fully installed.
missing_packages() {
  local -A ok=()
  local name arch status native
  native=$(dpkg --print-architecture)
  # A name may carry its architecture (libfoo:arm64); without one it means this machine's.
  while read -r name arch status; do
    [[ $status == ii* ]] || continue
    ok[$name:$arch]=1
    [[ $arch != "$native" && $arch != all ]] || ok[$name]=1
  done < <(dpkg-query -W -f='${Package} ${Architecture} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)
  for name in "$@"; do
    [[ -n ${ok[$name]:-} ]] || echo "$name"
  done
}

SUDO=()
need_root() { # WHAT-TO-RUN-AS-ROOT
  ((EUID == 0)) && return 0
  command -v sudo >/dev/null || fail "not root and no sudo; as root run: $1"
  SUDO=(sudo)
}

# A private archive dir: this image's apt hook deletes .debs after each dpkg
# run, and a shared one breaks when two apt runs overlap.
apt_opts() {
  APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dir::Cache::archives="$1" -o APT::Sandbox::User=root)
}

run_step() { # NAME FUNCTION HINT
  STEP=$1 HINT=$3 RESULT=""
  local t0
  t0=$(us_now)
  "$2"
  printf 'setup: %-12s %-58s %s\n' "$1" "$RESULT" "$(elapsed "$t0")"
}

# --- steps -------------------------------------------------------------------

step_toolchain() {
  # Only looked up, not run: rustup's proxy may try to install a toolchain.
  local cargo
  cargo=$(command -v cargo) || fail "cargo is not on PATH: install Rust with rustup, then run 'source \$HOME/.cargo/env' (or add ~/.cargo/bin to PATH)"
  RESULT="cargo at $cargo"
}

step_packages() {
  local wanted=("${APT_PACKAGES[@]}") missing=()
  if ! command -v python3 >/dev/null; then
    wanted+=(python3 python3-venv python3-pip)
  else
    python3 -c 'import ensurepip' 2>/dev/null || wanted+=(python3-venv)
    python3 -m pip --version >/dev/null 2>&1 || wanted+=(python3-pip)
  fi
  if ! command -v node >/dev/null; then
    wanted+=(nodejs npm)
  elif ! command -v npm >/dev/null; then
    wanted+=(npm)
  fi
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  if ((${#missing[@]} == 0)); then
    RESULT="all ${#wanted[@]} installed"
    return
  fi
  apt_install "${missing[@]}"
  RESULT="installed ${missing[*]}"
}

# apt-get update, then apt-get install -y "$@" (a name may be PACKAGE/RELEASE); checks each.
apt_install() {
  echo "setup: installing $# Debian packages: $*"
  need_root "apt-get install -y $*"
  local tmp
  tmp=$(new_tmp apt)
  mkdir -p "$tmp/partial"
  apt_opts "$tmp"
  "${SUDO[@]}" apt-get "${APT_OPTS[@]}" -q update >"$tmp/update.log" 2>&1 ||
    { tail -n 20 "$tmp/update.log" >&2; fail "apt-get update failed (log above); check the Debian mirror is reachable"; }
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -q install -y "$@" >"$tmp/install.log" 2>&1 ||
    { tail -n 20 "$tmp/install.log" >&2; fail "apt-get install failed (log above); rerun this script, or run: apt-get install -y $*"; }
  local still=()
  mapfile -t still < <(missing_packages "${@%%/*}")
  ((${#still[@]} == 0)) || fail "still not installed after apt-get: ${still[*]}"
}

# The CPython 3.11 wheel of SPEC for ARCH (default x86_64) into DIR, checked against its
# pinned sha256.
download_wheel() { # SPEC DIR WHEEL SHA256 [ARCH]
  # --no-cache-dir: keep downloads under .cache/, not in ~/.cache/pip.
  python3 -m pip download -q --disable-pip-version-check --no-cache-dir --no-deps \
    --only-binary=:all: --platform "manylinux_2_28_${5:-x86_64}" --python-version 3.11 --implementation cp \
    "$1" -d "$2"
  has_sha256 "$2/$3" "$4" || fail "$3 has sha256 $(sha256_of "$2/$3"), expected $4"
}

# ONNX Runtime's C library for ARCH, from the wheel WHEEL into LIB, each checked by its sha256.
install_onnxruntime() { # ARCH WHEEL WHEEL_SHA256 LIB LIB_SHA256
  local arch=$1 wheel=$2 lib=$4 lib_sum=$5 tmp part
  if has_sha256 "$lib" "$lib_sum"; then
    RESULT="$arch: present, sha256 ok"
    return
  fi
  tmp=$(new_tmp ort)
  download_wheel "onnxruntime==$ORT_VERSION" "$tmp" "$wheel" "$3" "$arch"
  mkdir -p "$(dirname "$lib")"
  part=$tmp/$(basename "$lib").part
  python3 - "$tmp/$wheel" "onnxruntime/capi/$(basename "$lib")" "$part" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  has_sha256 "$part" "$lib_sum" ||
    fail "extracted library has sha256 $(sha256_of "$part"), expected $lib_sum"
  mv -f "$part" "$lib"
  RESULT="$arch: extracted from onnxruntime $ORT_VERSION wheel"
}

step_onnxruntime() {
  [[ $(uname -m) == x86_64 ]] ||
    fail "this machine is $(uname -m): xueliang builds and tests on x86_64; aarch64 boxes get their programs from \`make aarch64\` there (docs/hardware.md)"
  install_onnxruntime x86_64 "$ORT_WHEEL" "$ORT_WHEEL_SHA256" "$ORT_LIB" "$ORT_LIB_SHA256"
}

step_aarch64_onnxruntime() {
  install_onnxruntime aarch64 "$ORT_AARCH64_WHEEL" "$ORT_AARCH64_WHEEL_SHA256" \
    "$ORT_AARCH64_LIB" "$ORT_AARCH64_LIB_SHA256"
}

# The version X.Y of qemu-aarch64, or nothing.
qemu_version() { qemu-aarch64 --version 2>/dev/null | sed -n '1s/.*version \([0-9]*\.[0-9]*\).*/\1/p'; }

# Whether version $1 (X.Y, maybe empty) is at least $2.
version_at_least() { [[ -n $1 && $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]; }

# Debian 12's backports archive, for qemu-user only: apt takes nothing from it unasked.
add_backports() {
  local list=/etc/apt/sources.list.d/debian-backports.sources
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  need_root "add bookworm-backports to $list"
  printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
    "${SUDO[@]}" tee "$list" >/dev/null
}

step_aarch64_packages() {
  local missing=() have
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    need_root "dpkg --add-architecture arm64"
    "${SUDO[@]}" dpkg --add-architecture arm64
  fi
  mapfile -t missing < <(missing_packages "${AARCH64_APT_PACKAGES[@]}")
  if ! version_at_least "$(qemu_version)" "$QEMU_MIN"; then
    if [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]]; then
      add_backports
      missing+=(qemu-user/bookworm-backports)
    else
      missing+=(qemu-user)
    fi
  fi
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
  version_at_least "$(qemu_version)" "$QEMU_MIN" ||
    fail "qemu-aarch64 is $(qemu_version) after apt-get; the emulated tests need $QEMU_MIN or newer"
  mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
  ((${#missing[@]} == 0)) || fail "installing the aarch64 packages removed ${missing[*]}: rerun this script"
  have=$("$AARCH64_RUSTC" -V | cut -d' ' -f2)
  [[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ]] ||
    fail "$AARCH64_RUSTC ($have) has no aarch64 standard library: apt-get install libstd-rust-web-dev:arm64"
  RESULT="rustc $have, qemu $(qemu_version)"
}

# The pkg-config files and library links of AARCH64_PLUGINS_BASE, in AARCH64_DIR.
step_aarch64_pkgconfig() {
  local entry pc lib so
  mkdir -p "$AARCH64_DIR/pkgconfig" "$AARCH64_DIR/lib"
  for entry in "${AARCH64_PLUGINS_BASE[@]}"; do
    pc=${entry%%:*} lib=${entry#*:}
    so=/usr/lib/aarch64-linux-gnu/lib$lib.so.0
    [[ -f $so ]] || fail "$so is missing: apt-get install gstreamer1.0-plugins-base:arm64"
    [[ -f /usr/lib/x86_64-linux-gnu/pkgconfig/$pc.pc ]] ||
      fail "$pc.pc is missing: apt-get install libgstreamer-plugins-base1.0-dev"
    sed -e "s|^libdir=.*|libdir=$AARCH64_DIR/lib|" -e 's|x86_64-linux-gnu|aarch64-linux-gnu|g' \
      "/usr/lib/x86_64-linux-gnu/pkgconfig/$pc.pc" >"$AARCH64_DIR/pkgconfig/$pc.pc"
    ln -sfn "$so" "$AARCH64_DIR/lib/lib$lib.so"
  done
  RESULT="${AARCH64_PLUGINS_BASE[*]%%:*} in ${AARCH64_DIR#"$ROOT"/}"
}

# The arm64 libav plugin, AARCH64_LIBAV, out of the package of the version apt offers.
step_aarch64_libav() {
  local version tmp deb
  version=$(apt-cache policy gstreamer1.0-libav:arm64 | sed -n 's/^ *Candidate: //p')
  if [[ -f $AARCH64_LIBAV && $(<"$AARCH64_LIBAV.version") == "$version" ]] 2>/dev/null; then
    RESULT="libgstlibav.so $version present"
    return
  fi
  tmp=$(new_tmp libav)
  download_deb gstreamer1.0-libav:arm64 "$tmp"
  deb=$(echo "$tmp"/gstreamer1.0-libav_*_arm64.deb)
  [[ -f $deb ]] || fail "apt-get download gstreamer1.0-libav:arm64 produced no .deb"
  dpkg-deb -x "$deb" "$tmp/x"
  mkdir -p "$(dirname "$AARCH64_LIBAV")"
  cp "$tmp/x/usr/lib/aarch64-linux-gnu/gstreamer-1.0/libgstlibav.so" "$AARCH64_LIBAV.part"
  mv -f "$AARCH64_LIBAV.part" "$AARCH64_LIBAV"
  echo "$version" >"$AARCH64_LIBAV.version"
  RESULT="libgstlibav.so $version from $(basename "$deb")"
}

step_model() {
  bash "$ROOT/models/fetch.sh"
  RESULT=".cache/models/nanodet_g416_coco.onnx"
}

# apt-get download needs package lists; a fresh image may have none.
download_deb() { # PACKAGE DIR
  local opts=(-o APT::Sandbox::User=root)
  (cd "$2" && apt-get "${opts[@]}" -q download "$1") >"$2/download.log" 2>&1 && return 0
  need_root "apt-get update"
  "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 -q update >"$2/update.log" 2>&1 ||
    { tail -n 20 "$2/update.log" >&2; fail "apt-get update failed (log above)"; }
  (cd "$2" && apt-get "${opts[@]}" -q download "$1") >"$2/download.log" 2>&1 ||
    { tail -n 20 "$2/download.log" >&2; fail "apt-get download $1 failed (log above)"; }
}

step_footage() {
  if has_sha256 "$FOOTAGE" "$FOOTAGE_SHA256"; then
    RESULT="vtest.avi present, sha256 ok"
    return
  fi
  local tmp src=${FOOTAGE_IN_DEB#.}
  tmp=$(new_tmp footage)
  mkdir -p "$(dirname "$FOOTAGE")"
  if has_sha256 "$src" "$FOOTAGE_SHA256"; then
    cp "$src" "$tmp/vtest.avi"
    RESULT="vtest.avi copied from installed opencv-doc"
  else
    # Only the one 8 MB file is wanted from the 96 MB package: no install.
    download_deb opencv-doc "$tmp"
    local deb
    deb=$(echo "$tmp"/opencv-doc_*.deb)
    [[ -f $deb ]] || fail "apt-get download opencv-doc produced no .deb"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "$FOOTAGE_IN_DEB"
    mv "$tmp/$FOOTAGE_IN_DEB" "$tmp/vtest.avi"
    RESULT="vtest.avi extracted from $(basename "$deb")"
  fi
  has_sha256 "$tmp/vtest.avi" "$FOOTAGE_SHA256" ||
    fail "vtest.avi has sha256 $(sha256_of "$tmp/vtest.avi"), expected $FOOTAGE_SHA256 (a changed opencv-doc package?)"
  mv -f "$tmp/vtest.avi" "$FOOTAGE"
}

step_openvino() {
  if [[ -f $OV_DIR/.xl-installed && $(<"$OV_DIR/.xl-installed") == "$OV_WHEEL_SHA256" ]]; then
    RESULT="present"
    return
  fi
  local tmp
  tmp=$(new_tmp openvino)
  download_wheel "onnxruntime-openvino==$OV_VERSION" "$tmp" "$OV_WHEEL" "$OV_WHEEL_SHA256"
  rm -rf "$OV_DIR"
  mkdir -p "$tmp/out"
  python3 - "$tmp/$OV_WHEEL" "$tmp/out" "${OV_FILES[@]}" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in sys.argv[3:]:
        with z.open("onnxruntime/capi/" + name) as src, open(sys.argv[2] + "/" + name, "wb") as dst:
            shutil.copyfileobj(src, dst)
EOF
  echo "$OV_WHEEL_SHA256" >"$tmp/out/.xl-installed"
  mv "$tmp/out" "$OV_DIR"
  RESULT="extracted ${#OV_FILES[@]} libraries of onnxruntime-openvino $OV_VERSION"
}

step_bench_venv() {
  local want tmp
  want=$(sha256_of "$BENCH_REQUIREMENTS")
  if [[ -f $BENCH_VENV/.xl-installed && $(<"$BENCH_VENV/.xl-installed") == "$want" ]]; then
    RESULT="present"
    return
  fi
  tmp=$(new_tmp venv)
  rm -rf "$BENCH_VENV"
  python3 -m venv "$BENCH_VENV" >"$tmp/venv.log" 2>&1 ||
    { cat "$tmp/venv.log" >&2; fail "python3 -m venv failed (Debian's python3 needs python3-venv)"; }
  "$BENCH_VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
    --only-binary=:all: -r "$BENCH_REQUIREMENTS" >"$tmp/pip.log" 2>&1 ||
    { tail -n 20 "$tmp/pip.log" >&2; fail "pip install -r benches/requirements.txt failed (log above)"; }
  echo "$want" >"$BENCH_VENV/.xl-installed"
  RESULT="installed benches/requirements.txt"
}

step_int8() {
  RESULT=$(bash "$ROOT/models/quantize.sh" | tail -n 1)
}

# What the browser test's node_modules were installed from.
browser_lock_sum() { cat "$BROWSER_DIR/package.json" "$BROWSER_DIR/package-lock.json" | sha256sum | cut -d' ' -f1; }

step_browser() {
  local want major tmp
  want=$(browser_lock_sum)
  if [[ -f $BROWSER_STAMP && $(<"$BROWSER_STAMP") == "$want" ]]; then
    RESULT="tests/browser/node_modules up to date"
    return
  fi
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= NODE_MIN_MAJOR)) ||
    fail "Node.js $(node --version) is too old for playwright-core; install Node.js >= $NODE_MIN_MAJOR"
  tmp=$(new_tmp npm)
  # npm's cache under .cache/ like every other download; playwright-core downloads no browser,
  # the variable only makes sure of it.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$BROWSER_DIR" --cache "$CACHE/npm" \
    --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1 ||
    { tail -n 20 "$tmp/npm.log" >&2; fail "npm ci in tests/browser failed (log above); npm must reach the npm registry"; }
  echo "$want" >"$BROWSER_STAMP"
  RESULT="npm ci: playwright-core $(node -p "require('$BROWSER_DIR/node_modules/playwright-core/package.json').version")"
}

main() {
  local t0
  t0=$(us_now)
  mkdir -p "$CACHE"
  trap cleanup EXIT
  # One run at a time: `make demo` and `make test` may start together.
  exec 9>"$CACHE/.setup.lock"
  if ! flock -n 9; then
    echo "setup: waiting for another setup run to finish"
    flock 9
  fi
  clean_stale_tmp

  run_step toolchain step_toolchain "install Rust with rustup"
  run_step packages step_packages "see the apt log above; rerun when the Debian mirror is reachable"
  run_step onnxruntime step_onnxruntime "pip must reach PyPI; rerun to retry"
  run_step model step_model "see models/fetch.sh output above and models/README.md"
  run_step footage step_footage "apt-get must reach the Debian mirror; rerun to retry"
  run_step browser step_browser "see the npm log above; rerun when the npm registry is reachable"
  if [[ ${1:-} == --aarch64 ]]; then
    run_step aarch64 step_aarch64_packages "see the apt log above; rerun when the Debian mirror is reachable"
    run_step pkgconfig step_aarch64_pkgconfig "see the message above"
    run_step libav step_aarch64_libav "apt-get must reach the Debian mirror; rerun to retry"
    run_step ort-aarch64 step_aarch64_onnxruntime "pip must reach PyPI; rerun to retry"
  fi
  if [[ ${1:-} == --bench ]]; then
    run_step openvino step_openvino "pip must reach PyPI; rerun to retry"
    run_step python step_bench_venv "pip must reach PyPI; rerun to retry"
    run_step int8 step_int8 "see the quantize output above"
  fi

  STEP=summary
  printf 'setup: done in %s (ORT_DYLIB_PATH=%s)\n' "$(elapsed "$t0")" "${ORT_LIB#"$ROOT"/}"
}

# Sourcing the file (for tests of its helpers) defines functions only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
