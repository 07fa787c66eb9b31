#!/usr/bin/env python3
"""Kotlin vs Python on a real model written by the SDK: Kotlin's own input tensors through the same .tflite.

    python android_demo/tools/check_vectors.py --model out/lite0_int8.tflite

1. ``export_vectors.py --tflite MODEL`` writes Python's side: the photos' pixels (``edge.preprocess``),
   their input tensors (``edge.quant.input_affine``), the model's outputs on them, what
   ``edge.metadata.read_metadata`` says about the model.
2. ``android_demo/core/run_jvm_tests.sh`` (with ``EDGE_REQUIRE_VECTORS=1 EDGE_REQUIRE_MODEL=1``): Kotlin reads
   the model's metadata and labels itself, builds every photo's input tensor with its own pipeline and
   ``InputEncoder`` and writes it (``NAME.input.enc``), and post-processes the model's real outputs; each is
   compared exactly with Python's.
3. Here, each tensor Kotlin wrote goes through ``ai_edge_litert``'s Interpreter exactly as written (Python
   encodes nothing on Kotlin's behalf), next to Python's own tensor. The table shows the bytes that differ,
   the largest output difference and both top-1s.

Exit status 1 when the JVM tests fail, a Kotlin tensor is missing or differs from Python's by one byte, or a
top-1 differs. ``--vectors DIR --kotlin DIR`` reuses the output of an earlier run instead of steps 1-2.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from edge import quant

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def encode_input(pixels: np.ndarray, detail: dict, mean, std) -> np.ndarray:
    """uint8 NHWC pixels → the input tensor with the SDK's own map (Python's side only)."""
    scale, zp = detail["quantization"]
    return quant.input_affine(mean, std, float(scale), int(zp)).apply(pixels, np.dtype(detail["dtype"]))


def run_model(it, inp: dict, out: dict, tensor: np.ndarray) -> np.ndarray:
    it.set_tensor(inp["index"], tensor.reshape(inp["shape"]))
    it.invoke()
    return it.get_tensor(out["index"]).reshape(-1).copy()


def top1(raw: np.ndarray, out: dict, logits: bool) -> tuple[int, float]:
    scale, zp = out["quantization"]
    v = quant.dequantize(raw, scale, zp) if scale else raw.astype(np.float32)
    return quant.top_k(quant.softmax(v) if logits else v, 1)[0]


def run_kotlin(model: str, tmp: str) -> tuple[str, str]:
    """Steps 1-2: export the vectors, run the JVM tests keeping Kotlin's tensors. Returns (vectors, kotlin)."""
    vectors, kotlin = os.path.join(tmp, "vectors"), os.path.join(tmp, "kotlin")
    os.makedirs(kotlin)
    subprocess.run([sys.executable, os.path.join(HERE, "export_vectors.py"), "--out", vectors, "--tflite", model],
                   check=True)
    env = dict(os.environ, EDGE_VECTORS_DIR=vectors, EDGE_KOTLIN_OUT=kotlin, EDGE_REQUIRE_VECTORS="1",
               EDGE_REQUIRE_MODEL="1")
    r = subprocess.run(["bash", os.path.join(REPO, "android_demo", "core", "run_jvm_tests.sh")], env=env)
    if r.returncode != 0:
        raise SystemExit(f"JVM tests failed (exit {r.returncode}); Kotlin's tensors are not trustworthy")
    return vectors, kotlin


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help=".tflite written by the SDK (with its metadata)")
    ap.add_argument("--vectors", help="export_vectors.py --tflite output of an earlier run (with --kotlin)")
    ap.add_argument("--kotlin", help="directory of NAME.input.enc tensors written by the Kotlin tests")
    args = ap.parse_args(argv)
    if bool(args.vectors) != bool(args.kotlin):
        ap.error("--vectors and --kotlin go together")

    from ai_edge_litert.interpreter import Interpreter
    from edge.metadata import read_metadata

    info = read_metadata(args.model)
    if info is None or info.spec is None:
        print(f"error: {args.model} has no efficientnet-edge metadata; convert it with efficientnet-convert",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-check-") as tmp:
        vectors, kotlin = (args.vectors, args.kotlin) if args.kotlin else run_kotlin(args.model, tmp)
        with open(os.path.join(vectors, "manifest.json")) as f:
            manifest = json.load(f)
        photos = {p["name"]: p for p in manifest["photos"]}

        it = Interpreter(model_path=args.model)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        dtype = np.dtype(inp["dtype"])
        logits = info.output_kind == "logits"
        labels = info.labels or []
        name = lambda i: labels[i] if i < len(labels) else f"class {i}"  # noqa: E731
        print(f"\nmodel {args.model}: input {dtype.name} {list(inp['shape'])} quant {inp['quantization']}, "
              f"input_mean {info.input_mean} input_std {info.input_std}, output {info.output_kind}")
        print("Kotlin's tensors (as Kotlin wrote them) and Python's, through ai_edge_litert:")
        header = (f"{'photo':18} {'bytes differ':>12} {'max|out diff|':>13}  {'python top-1':>26}  "
                  f"{'kotlin top-1':>26}  same  right class")
        print(header)
        print("-" * len(header))
        failures = 0
        for p in photos.values():
            kt_path = os.path.join(kotlin, f"{p['name']}.input.enc")
            if not os.path.exists(kt_path):
                print(f"{p['name']:18} Kotlin wrote no tensor ({kt_path})")
                failures += 1
                continue
            pixels = np.fromfile(os.path.join(vectors, p["tensor"]), np.uint8)
            py = encode_input(pixels.reshape(inp["shape"]), inp, info.input_mean, info.input_std).reshape(-1)
            kt = np.fromfile(kt_path, dtype)
            if kt.size != py.size:
                print(f"{p['name']:18} Kotlin's tensor has {kt.size} values, the model takes {py.size}")
                failures += 1
                continue
            differ = int(np.count_nonzero(py.view(np.uint8) != kt.view(np.uint8)))
            raw_py, raw_kt = run_model(it, inp, out, py), run_model(it, inp, out, kt)
            out_diff = float(np.max(np.abs(raw_py.astype(np.float64) - raw_kt.astype(np.float64))))
            (i_py, s_py), (i_kt, s_kt) = top1(raw_py, out, logits), top1(raw_kt, out, logits)
            same = i_py == i_kt
            failures += 0 if (same and differ == 0) else 1
            print(f"{p['name']:18} {differ:12d} {out_diff:13g}  {i_py:4d} {name(i_py)[:14]:14} {s_py:.4f}  "
                  f"{i_kt:4d} {name(i_kt)[:14]:14} {s_kt:.4f}  {'yes ' if same else 'NO  '}  "
                  f"{'yes' if i_kt in p.get('classes', []) else 'no'}")
        n = len(photos)
        print(f"{n - failures}/{n} photos: Kotlin's encoded tensor identical to Python's and the same top-1")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
