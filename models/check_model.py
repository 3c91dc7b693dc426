#!/usr/bin/env python3
"""Check an ONNX detector by what it computes, not by its bytes.

tf2onnx output is not byte-reproducible, so `models/fetch.sh` cannot pin the
sha256 of a fresh conversion. Instead this script runs the model with the
Python `onnxruntime` package on one fixed synthetic image and compares every
output with reference statistics committed in the repository.

Usage:
  check_model.py MODEL.onnx REFERENCE.json            exit 0 if it matches
  check_model.py MODEL.onnx REFERENCE.json --write    (re)write the reference

The fixed input (no RNG, so it does not depend on numpy's generator):
  a 416x416 BGR uint8 image, for y, x in [0, 416) and channel c in (B, G, R):
    img[y, x, c] = (3*x + 5*y + 85*c + 60*(((x // 32) + (y // 32)) % 2)
                    + (x * y) // 97) % 256
  normalised as the detector expects, (img - MEAN) / STD, and laid out NCHW.

Comparison: class scores come sigmoid-applied, mostly tiny, so they are
compared as logits (log(p / (1 - p))); box tensors are logits already. For each
output: shape exactly, and sum, mean |v|, min, max and 24 values at fixed flat
indices each within |a - b| <= ATOL + RTOL * |b|. Outputs are matched by name;
if the names differ (a different converter may name them differently) they
are matched by shape, which is unique per output for NanoDet.
"""

import hashlib
import json
import sys

import numpy as np
import onnxruntime as ort

SIZE = 416
MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)  # B, G, R
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)
# Measured: a re-conversion computed bit-identical outputs; 1 % noise on one
# conv layer's weights fails by far (logit errors ~1e-2); 0.1 % noise on one
# layer still passes (a quarter of the allowed deviation). Room is left for
# other CPUs' kernels, whose float rounding differs slightly.
ATOL = 1e-3
RTOL = 1e-3
N_SAMPLES = 24


def fixed_input():
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.int64)
    chans = []
    for c in range(3):
        v = (3 * x + 5 * y + 85 * c + 60 * (((x // 32) + (y // 32)) % 2) + (x * y) // 97) % 256
        chans.append(v)
    img = np.stack(chans, axis=-1).astype(np.float32)  # HWC, BGR
    norm = (img - MEAN) / STD
    return np.ascontiguousarray(norm.transpose(2, 0, 1)[None], dtype=np.float32)


def to_logit(name_shape, v):
    # Class tensors (last dim 80) hold probabilities; compare them as logits
    # so that tiny scores are still compared with full precision.
    if name_shape[-1] == 80:
        p = np.clip(v.astype(np.float64), 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))
    return v.astype(np.float64)


def stats(shape, v):
    flat = to_logit(shape, v).ravel()
    idx = np.linspace(0, flat.size - 1, N_SAMPLES).round().astype(np.int64)
    return {
        "shape": list(shape),
        "sum": float(flat.sum()),
        "mean_abs": float(np.abs(flat).mean()),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "sample_index": idx.tolist(),
        "sample": [float(flat[i]) for i in idx],
        # Not compared: a human-readable hint of what the raw output holds.
        "raw_max": float(v.max()),
    }


def run(model_path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # one thread: same summation order every run
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    outputs = sess.get_outputs()
    info = {
        "inputs": [{"name": i.name, "shape": i.shape, "type": i.type} for i in inputs],
        "outputs": [{"name": o.name, "shape": o.shape, "type": o.type} for o in outputs],
    }
    if len(inputs) != 1:
        raise SystemExit(f"check_model: expected 1 input, got {len(inputs)}")
    values = sess.run(None, {inputs[0].name: fixed_input()})
    results = {o.name: stats(v.shape, v) for o, v in zip(outputs, values)}
    return info, results


def close(a, b):
    return abs(a - b) <= ATOL + RTOL * abs(b)


def compare(ref, info, results):
    errors = []
    ref_in = ref["inputs"][0]
    got_in = info["inputs"][0]
    if got_in["shape"] != ref_in["shape"] or got_in["type"] != ref_in["type"]:
        errors.append(f"input {got_in} differs from reference {ref_in}")
    if got_in["name"] != ref_in["name"]:
        print(f"check_model: NOTE input name {got_in['name']!r} != reference {ref_in['name']!r}")

    ref_out = ref["outputs"]
    if sorted(ref_out) == sorted(results):
        pairs = [(n, n) for n in sorted(ref_out)]
    else:
        print("check_model: NOTE output names differ from the reference; matching by shape")
        by_shape = {tuple(r["shape"]): n for n, r in results.items()}
        if len(by_shape) != len(results):
            errors.append("output shapes are not unique, cannot match by shape")
            return errors, 0.0
        pairs = []
        for n, r in sorted(ref_out.items()):
            got = by_shape.get(tuple(r["shape"]))
            if got is None:
                errors.append(f"no output with shape {r['shape']} (reference {n})")
            else:
                pairs.append((n, got))
        if len(results) != len(ref_out):
            errors.append(f"{len(results)} outputs, reference has {len(ref_out)}")

    worst = 0.0
    for ref_name, got_name in pairs:
        r, g = ref_out[ref_name], results[got_name]
        if g["shape"] != r["shape"]:
            errors.append(f"{got_name}: shape {g['shape']} != {r['shape']}")
            continue
        checks = [(k, g[k], r[k]) for k in ("sum", "mean_abs", "min", "max")]
        checks += [(f"v[{i}]", a, b) for i, a, b in zip(r["sample_index"], g["sample"], r["sample"])]
        bad = [(k, a, b) for k, a, b in checks if not close(a, b)]
        worst = max([worst] + [abs(a - b) / (ATOL + RTOL * abs(b)) for _, a, b in checks])
        for k, a, b in bad[:5]:
            errors.append(f"{got_name} {k}: {a:.6g} != reference {b:.6g}")
        if len(bad) > 5:
            errors.append(f"{got_name}: {len(bad) - 5} more values differ")
    return errors, worst


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3] != "--write"):
        print(next(p for p in __doc__.split("\n\n") if p.startswith("Usage:")), file=sys.stderr)
        return 2
    model_path, ref_path = argv[1], argv[2]
    info, results = run(model_path)
    print(f"check_model: input  {info['inputs'][0]['name']} {info['inputs'][0]['shape']} {info['inputs'][0]['type']}")
    for o in info["outputs"]:
        print(f"check_model: output {o['name']} {o['shape']} {o['type']}")

    if len(argv) == 4:
        ref = {
            "about": "Reference outputs of NanoDet-g-416 on the fixed input of models/check_model.py; "
            "written with --write from the reference conversion (sha256 in models/README.md).",
            "written_from_sha256": hashlib.sha256(open(model_path, "rb").read()).hexdigest(),
            "onnxruntime": ort.__version__,
            "inputs": info["inputs"],
            "outputs": results,
        }
        with open(ref_path, "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        print(f"check_model: wrote {ref_path}")
        return 0

    with open(ref_path) as f:
        ref = json.load(f)
    errors, worst = compare(ref, info, results)
    if errors:
        for e in errors:
            print(f"check_model: MISMATCH {e}", file=sys.stderr)
        print(f"check_model: FAILED: {model_path} does not compute what the reference does", file=sys.stderr)
        return 1
    print(f"check_model: OK, all outputs within tolerance (worst {worst:.3g} of the allowed deviation)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
