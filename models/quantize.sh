#!/usr/bin/env bash
# Produce .cache/models/nanodet_g416_coco.int8.onnx and its card: the detector quantized to
# INT8 (static QDQ, models/quantize.py), calibrated on 54 frames of the footage spread over the
# whole clip. Idempotent; run by `scripts/setup.sh --bench` (`make bench` then measures it
# against the fp32 model: frames/s and AP50 on PETS09).
set -euEo pipefail
export LC_ALL=C

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=$ROOT/.cache

MODEL=$CACHE/models/nanodet_g416_coco.onnx
INT8=$CACHE/models/nanodet_g416_coco.int8.onnx
FOOTAGE=$CACHE/footage/vtest.avi
# The bench's Python (scripts/setup.sh --bench makes it from benches/requirements.txt).
PYTHON=$CACHE/venv-bench/bin/python

fail() { echo "quantize: $*" >&2; exit 1; }

[[ -f $INT8 && -f ${INT8%.onnx}.card.toml ]] && { echo "present"; exit 0; }
[[ -f $MODEL ]] || fail "$MODEL is missing: run scripts/setup.sh first"
[[ -f $FOOTAGE ]] || fail "$FOOTAGE is missing: run scripts/setup.sh first"
[[ -x $PYTHON ]] || fail "$PYTHON is missing: run scripts/setup.sh --bench"

mkdir -p "$CACHE/tmp"
TMP=$(mktemp -d "$CACHE/tmp/quantize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Calibration frames: 2 every 3 s of the clip, scaled to the model's input as the agent
# stretches them, in the card's BGR order.
gst-launch-1.0 -q filesrc location="$FOOTAGE" ! decodebin ! videorate ! video/x-raw,framerate=2/3 ! \
  videoconvert ! videoscale ! video/x-raw,format=BGR,width=416,height=416 ! \
  filesink location="$TMP/frames.bgr" || fail "GStreamer could not decode $FOOTAGE"
"$PYTHON" "$ROOT/models/quantize.py" "$MODEL" "$TMP/frames.bgr" "$TMP/int8.onnx" 2>"$TMP/quantize.log" ||
  { cat "$TMP/quantize.log" >&2; fail "quantization failed (log above)"; }
sed 's/^name = .*/name = "nanodet-g-416-coco-int8"/' "$ROOT/models/nanodet_g416_coco.card.toml" >"$TMP/int8.card.toml"
mv -f "$TMP/int8.card.toml" "${INT8%.onnx}.card.toml"
mv -f "$TMP/int8.onnx" "$INT8"
echo "${INT8#"$ROOT"/}"
