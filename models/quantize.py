"""INT8 variant of the detector: static QDQ quantization calibrated on frames of the footage.

Usage: quantize.py MODEL FRAMES OUT
  MODEL   the fp32 ONNX model
  FRAMES  raw BGR frames of the footage, already scaled to the model's input size, one after
          another (models/quantize.sh makes them with GStreamer)
  OUT     the INT8 model

Only convolutions are quantized (per channel, weights int8, activations uint8). The head's last
convolutions, whose outputs are split into class scores and box distances, stay fp32: quantized,
one scale has to cover both and the scores collapse (measured: the top score of a frame fell
from 0.80 to 0.05). The normalization is the model card's.
"""

import sys

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def frames(path, width, height):
    raw = np.fromfile(path, dtype=np.uint8)
    size = width * height * 3
    if raw.size < size or raw.size % size:
        sys.exit(f"quantize: {path} holds {raw.size} bytes, not whole {width}x{height} BGR frames")
    bgr = raw.reshape(-1, height, width, 3).astype(np.float32)
    return ((bgr - MEAN) / STD).transpose(0, 3, 1, 2).copy()


class Frames(CalibrationDataReader):
    def __init__(self, name, batch):
        self.items = iter([{name: x[None]} for x in batch])

    def get_next(self):
        return next(self.items, None)


def head_convolutions(graph):
    """Convolutions whose output goes straight to a Split or out of the graph."""
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    heads = set()
    for node in graph.node:
        feeds = [node.input[0]] if node.op_type == "Split" else []
        for name in feeds:
            p = producer.get(name)
            if p is not None and p.op_type == "Conv":
                heads.add(p.name)
    heads.update(n.name for n in graph.node if n.op_type == "Conv" and outputs & set(n.output))
    return sorted(heads)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model_path, frames_path, out = sys.argv[1:]
    model = onnx.load(model_path)
    (inp,) = model.graph.input
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    height, width = dims[2], dims[3]
    batch = frames(frames_path, width, height)
    heads = head_convolutions(model.graph)
    quantize_static(
        model_path,
        out,
        Frames(inp.name, batch),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=["Conv"],
        nodes_to_exclude=heads,
    )
    print(f"quantize: {len(batch)} calibration frames, head convolutions kept fp32: {', '.join(heads)}")


if __name__ == "__main__":
    main()
