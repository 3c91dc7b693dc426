"""The baseline `xl-agent bench` is compared with: the usual Python pipeline, OpenCV decoding
the clip and resizing each frame, NumPy normalizing it, ONNX Runtime running the same model
with the same threads. Every frame is inferred, one after another on one thread (decode,
preprocess, infer), as such programs do; the clip is looped.

Usage: python_pipeline.py MODEL CLIP THREADS FRAMES REPEATS
Prints each repeat's frames/s and their median, min and max.
"""

import sys
import time

import cv2
import numpy as np
import onnxruntime as ort

MEAN = np.array([103.53, 116.28, 123.675], dtype=np.float32)
STD = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    model, clip, threads, frames, repeats = sys.argv[1:]
    threads, frames, repeats = int(threads), int(frames), int(repeats)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    height, width = inp.shape[2], inp.shape[3]
    video = cv2.VideoCapture(clip)

    def frame():
        ok, bgr = video.read()
        if not ok:
            video.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = video.read()
            if not ok:
                sys.exit(f"python_pipeline: cannot decode {clip}")
        return bgr

    def one():
        x = cv2.resize(frame(), (width, height), interpolation=cv2.INTER_LINEAR)
        x = ((x.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        session.run(None, {inp.name: x})

    for _ in range(10):
        one()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(frames):
            one()
        rates.append(frames / (time.perf_counter() - t0))
        print(f"python_pipeline: {rates[-1]:.1f} frames/s")
    rates.sort()
    print(
        f"python pipeline (OpenCV + onnxruntime {ort.__version__}, {threads} thread(s)): "
        f"{rates[len(rates) // 2]:.1f} frames/s median (min {rates[0]:.1f}, max {rates[-1]:.1f}) "
        f"over {repeats} repeats of {frames} frames"
    )


if __name__ == "__main__":
    main()
