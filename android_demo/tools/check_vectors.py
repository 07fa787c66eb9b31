#!/usr/bin/env python3
"""Top-1 parity: the input tensors the Kotlin pipeline built vs Python's own, through the same .tflite.

    python android_demo/tools/check_vectors.py --model android_demo/app/src/main/assets/model.tflite

Without ``--kotlin DIR`` it runs ``android_demo/core/run_jvm_tests.sh`` itself (exporting the vectors with
export_vectors.py and keeping the tensors Kotlin produced). Both tensors of every shipped photo are
quantised the way the app does (``real = (pixel - input_mean) / input_std`` from the model's
``efficientnet_edge.json``, then ``rint(real / scale) + zero_point``), run through
``ai_edge_litert.interpreter.Interpreter``, and must give the same top-1. Prints a table; exits 1 on any
mismatch.
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


def model_normalisation(tflite: str, mean: float | None = None, std: float | None = None):
    """input_mean/input_std from the model's metadata (edge.metadata.read_metadata), or the overrides."""
    if mean is not None and std is not None:
        return [mean], [std]
    from edge.metadata import read_metadata
    info = read_metadata(tflite)
    if info is None or info.spec is None:
        raise SystemExit(f"{tflite}: no efficientnet-edge metadata; pass --input-mean/--input-std")
    return info.input_mean, info.input_std


def encode_input(pixels: np.ndarray, detail: dict, mean, std) -> np.ndarray:
    """uint8 NHWC pixels → the input tensor with the SDK's own map (the app's InputEncoder mirrors it)."""
    scale, zp = detail["quantization"]
    return quant.input_affine(mean, std, float(scale), int(zp)).apply(pixels, np.dtype(detail["dtype"]))


def scores_of(it, out_detail: dict, logits: bool) -> np.ndarray:
    raw = it.get_tensor(out_detail["index"]).reshape(-1)
    scale, zp = out_detail["quantization"]
    v = quant.dequantize(raw, scale, zp) if scale else raw.astype(np.float32)
    return quant.softmax(v) if logits else v


def top1(scores: np.ndarray) -> tuple[int, float]:
    return quant.top_k(scores, 1)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help=".tflite with a 1xSxSx3 input")
    ap.add_argument("--vectors", help="export_vectors.py output dir (with --kotlin)")
    ap.add_argument("--kotlin", help="dir of NAME.input.u8 tensors written by the Kotlin tests")
    ap.add_argument("--variant", default="lite0", help="variant whose spec the vectors use (default lite0)")
    ap.add_argument("--input-mean", type=float, help="override: raw-pixel mean when the model has no metadata")
    ap.add_argument("--input-std", type=float, help="override: raw-pixel std when the model has no metadata")
    args = ap.parse_args(argv)

    tmp = None
    if not args.kotlin:
        tmp = tempfile.TemporaryDirectory(prefix="edge-check-")
        args.vectors = os.path.join(tmp.name, "vectors")
        args.kotlin = os.path.join(tmp.name, "kotlin")
        os.makedirs(args.kotlin)
        subprocess.run([sys.executable, os.path.join(HERE, "export_vectors.py"), "--out", args.vectors,
                        "--model", args.variant], check=True)
        env = dict(os.environ, EDGE_VECTORS_DIR=args.vectors, EDGE_KOTLIN_OUT=args.kotlin, EDGE_REQUIRE_VECTORS="1")
        r = subprocess.run(["bash", os.path.join(REPO, "android_demo", "core", "run_jvm_tests.sh")], env=env,
                           capture_output=True, text=True)
        print("\n".join(l for l in r.stdout.splitlines() if "mean abs" in l or "passed," in l))
        if r.returncode != 0:
            print(r.stdout[-4000:], r.stderr[-2000:])
            raise SystemExit("JVM tests failed; cannot check top-1")
    if not args.vectors:
        raise SystemExit("--kotlin needs --vectors")

    from ai_edge_litert.interpreter import Interpreter

    with open(os.path.join(args.vectors, "manifest.json")) as f:
        manifest = json.load(f)
    it = Interpreter(model_path=args.model)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    size = int(inp["shape"][1])
    mean, std = model_normalisation(args.model, args.input_mean, args.input_std)
    from edge.metadata import read_metadata
    info = read_metadata(args.model)
    logits = bool(info and info.spec and info.output_kind == "logits")
    print(f"model {args.model}: input {np.dtype(inp['dtype']).name} {list(inp['shape'])} "
          f"quant {inp['quantization']}, input_mean {mean} input_std {std}, "
          f"output {'logits' if logits else 'probabilities'}")

    header = (f"{'photo':18} {'mean|d|':>8} {'max|d|':>6}  {'python top-1':>18}  {'kotlin top-1':>18}  same"
              f"  right class")
    print(header)
    print("-" * len(header))
    failures, diffs = 0, []
    for p in manifest["photos"]:
        py = np.fromfile(os.path.join(args.vectors, p["tensor"]), np.uint8)
        kt_path = os.path.join(args.kotlin, os.path.basename(p["tensor"]))
        if not os.path.exists(kt_path):
            print(f"{p['name']:18} missing Kotlin tensor {kt_path}")
            failures += 1
            continue
        kt = np.fromfile(kt_path, np.uint8)
        if py.size != size * size * 3 or kt.size != py.size:
            raise SystemExit(f"{p['name']}: tensor sizes {py.size}/{kt.size} do not fit the model's {size}x{size}x3")
        d = np.abs(py.astype(np.int16) - kt.astype(np.int16))
        diffs.append(float(d.mean()))
        results = []
        for t in (py, kt):
            it.set_tensor(inp["index"], encode_input(t.reshape(1, size, size, 3), inp, mean, std))
            it.invoke()
            results.append(top1(scores_of(it, out, logits)))
        same = results[0][0] == results[1][0]
        failures += 0 if same else 1
        print(f"{p['name']:18} {d.mean():8.4f} {int(d.max()):6d}  {results[0][0]:5d} ({results[0][1]:.4f})    "
              f"{results[1][0]:5d} ({results[1][1]:.4f})    {'yes' if same else 'NO '}   "
              f"{'yes' if results[1][0] in p.get('classes', []) else 'no'}")
    print(f"{len(manifest['photos']) - failures}/{len(manifest['photos'])} photos with identical top-1; "
          f"worst mean abs pixel difference {max(diffs) if diffs else float('nan'):.4f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
