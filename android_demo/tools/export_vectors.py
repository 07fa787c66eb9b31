#!/usr/bin/env python3
"""Write the shared test vectors that android_demo/core's JVM tests compare Kotlin against.

Everything comes from the SDK's own code (``edge.preprocess``, ``edge.samples``, ``edge.variants``), so the
Kotlin pipeline is checked against exactly what Python feeds a model:

* photos/    for every shipped sample photo: the decoded RGB pixels after EXIF transpose (``NAME.rgb``,
             raw HxWx3 bytes) and the uint8 input tensor ``edge.preprocess.preprocess`` produces
             (``NAME.input.u8``, size x size x 3).
* resize/    small random images resized by Pillow with every filter, up- and downscaling, with boxes.
* orient/    a small image under each EXIF orientation 1-8 after ``ImageOps.exif_transpose``.
* outputs/   synthetic output vectors (uint8/int8 quantised with scale/zero point, float, logits, many
             ties) with numpy's dequantisation and top-k (score descending, then index ascending).
* archives/  model-like files: bytes + a ZIP of ``labels.txt`` and ``efficientnet_edge.json`` appended by
             Python's zipfile (stored and deflated), as the converter writes them.
* draft/     the decode scale Pillow's JPEG draft picks for the SDK's ``preprocess(draft=True)`` rule, for
             photo sizes up to 12 MP (real JPEGs through ``edge.preprocess.open_image``) and beyond (headers).
* model/     with ``--tflite``: that model (as the SDK wrote it), its tensor details from the interpreter,
             what ``edge.metadata.read_metadata`` says about it, and for every photo Python's encoded input
             tensor (``edge.quant.input_affine``), the raw output of the model on it, its dequantised values
             and top-5 with labels. The photos' spec is then the model's own.

``manifest.json`` lists it all. Generated at test time into a temp dir; nothing here is committed.

    python android_demo/tools/export_vectors.py --out /tmp/vectors [--model lite0 | --tflite model.tflite]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
import zipfile

import numpy as np
from PIL import Image, ImageOps

from edge import quant
from edge.preprocess import crop_and_resize, open_image, preprocess, resample_filter
from edge.samples import sample_photos
from edge.variants import preprocess_spec

TOP_K = 5


def top_k(scores: np.ndarray, k: int) -> list[list]:
    """The SDK's rule: score descending, ties broken by the lower index."""
    return [[i, float(np.float32(v))] for i, v in quant.top_k(scores, k)]


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def export_photos(out: str, spec) -> list[dict]:
    rows = []
    for photo in sample_photos():
        decoded = open_image(photo.path)  # EXIF transpose + any mode → RGB, exactly as preprocess does
        tensor = preprocess(photo.path, spec)
        assert np.array_equal(tensor, crop_and_resize(decoded, spec)), photo.name
        write(os.path.join(out, "photos", f"{photo.name}.rgb"), np.asarray(decoded, np.uint8).tobytes())
        write(os.path.join(out, "photos", f"{photo.name}.input.u8"), tensor.tobytes())
        rows.append({"name": photo.name, "width": decoded.width, "height": decoded.height,
                     "rgb": f"photos/{photo.name}.rgb", "tensor": f"photos/{photo.name}.input.u8",
                     "classes": list(photo.classes)})
    return rows


def export_resize(out: str) -> list[dict]:
    rng = np.random.default_rng(1234)
    cases = []
    shapes = [  # (in w, in h, out w, out h, box or None)
        (37, 23, 16, 16, (3, 2, 30, 21)),
        (7, 5, 19, 13, None),
        (64, 48, 10, 10, (8, 0, 56, 48)),
        (31, 31, 31, 31, (1, 1, 30, 30)),
        (50, 20, 24, 9, None),
    ]
    for n, (w, h, ow, oh, box) in enumerate(shapes):
        src = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        if n == 0:  # hard edges exercise clipping of the negative lobes
            src[:, : w // 2] = 0
            src[:, w // 2:] = 255
        img = Image.fromarray(src, "RGB")
        write(os.path.join(out, "resize", f"src{n}.rgb"), src.tobytes())
        for name in ("bicubic", "bilinear", "box", "hamming", "lanczos"):
            res = img.resize((ow, oh), resample_filter(name), box=box)
            rel = f"resize/src{n}.{name}.rgb"
            write(os.path.join(out, rel), np.asarray(res, np.uint8).tobytes())
            cases.append({"src": f"resize/src{n}.rgb", "width": w, "height": h, "out_width": ow,
                          "out_height": oh, "box": list(box) if box else [0, 0, w, h],
                          "filter": name, "expected": rel})
    return cases


def export_orientation(out: str) -> dict:
    rng = np.random.default_rng(99)
    src = rng.integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    write(os.path.join(out, "orient", "src.rgb"), src.tobytes())
    results = []
    for o in range(1, 9):
        img = Image.fromarray(src, "RGB")
        img.getexif()[0x0112] = o
        upright = ImageOps.exif_transpose(img)
        rel = f"orient/o{o}.rgb"
        write(os.path.join(out, rel), np.asarray(upright, np.uint8).tobytes())
        results.append({"orientation": o, "width": upright.width, "height": upright.height, "file": rel})
    return {"src": "orient/src.rgb", "width": 5, "height": 3, "results": results}


def _output_case(out: str, name: str, raw: np.ndarray, dtype: str, scale: float, zp: int, kind: str) -> dict:
    raw = np.ascontiguousarray(raw.reshape(-1))
    if dtype == "float32" or scale == 0.0:
        real = raw.astype(np.float32)
    else:
        real = quant.dequantize(raw, scale, zp)
    scores = quant.softmax(real) if kind == "logits" else real
    write(os.path.join(out, "outputs", f"{name}.raw"), raw.astype("<f4" if dtype == "float32" else raw.dtype).tobytes())
    write(os.path.join(out, "outputs", f"{name}.real.f32"), real.astype("<f4").tobytes())
    return {"name": name, "dtype": dtype, "scale": float(np.float32(scale)), "zero_point": int(zp), "kind": kind,
            "count": int(raw.size), "raw": f"outputs/{name}.raw", "real": f"outputs/{name}.real.f32",
            "topk": top_k(scores, TOP_K)}


def export_outputs(out: str) -> list[dict]:
    """Synthetic vectors: heavy ties (the common case for uint8 outputs), negative zero points, logits."""
    cases = []
    rng = np.random.default_rng(7)
    u8 = rng.integers(0, 12, size=1000).astype(np.uint8)
    u8[[17, 400, 401, 999]] = [200, 230, 230, 200]
    cases.append(_output_case(out, "synthetic_u8", u8, "uint8", 1.0 / 256.0, 0, "probabilities"))
    i8 = rng.integers(-128, -100, size=1000).astype(np.int8)
    i8[[3, 5, 7]] = [90, 90, 127]
    cases.append(_output_case(out, "synthetic_i8", i8, "int8", 0.00390625, -128, "probabilities"))
    i8l = rng.integers(-128, 128, size=1000).astype(np.int8)
    cases.append(_output_case(out, "synthetic_i8_logits", i8l, "int8", float(np.float32(0.0871)), 3, "logits"))
    f = rng.normal(size=1000).astype(np.float32)
    f[[10, 11]] = np.float32(6.5)
    cases.append(_output_case(out, "synthetic_f32_logits", f, "float32", 0.0, 0, "logits"))
    return cases


def _tensor_details(d: dict) -> dict:
    scale, zp = d["quantization"]
    return {"dtype": np.dtype(d["dtype"]).name, "shape": [int(x) for x in d["shape"]],
            "scale": float(np.float32(scale)), "zero_point": int(zp)}


def export_model(out: str, photos: list[dict], tflite: str) -> dict:
    """The SDK-written model, what Python knows about it, and Python's side of every photo through it."""
    from ai_edge_litert.interpreter import Interpreter
    from edge.metadata import read_metadata

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from check_vectors import encode_input

    info = read_metadata(tflite)
    if info is None or info.spec is None:
        raise SystemExit(f"{tflite}: no efficientnet-edge metadata (convert it with efficientnet-convert)")
    with open(tflite, "rb") as f:
        write(os.path.join(out, "model", "model.tflite"), f.read())
    labels = list(info.labels or [])
    write(os.path.join(out, "model", "labels.txt"), "".join(f"{x}\n" for x in labels).encode("utf-8"))

    it = Interpreter(model_path=tflite)
    it.allocate_tensors()
    inp, outd = it.get_input_details()[0], it.get_output_details()[0]
    size = int(inp["shape"][1])
    rows = []
    for p in photos:
        pixels = np.fromfile(os.path.join(out, p["tensor"]), np.uint8)
        if pixels.size != size * size * 3:
            raise SystemExit(f"{p['name']}: {pixels.size} pixels do not fit the model's {size}x{size}x3 input")
        encoded = encode_input(pixels.reshape(1, size, size, 3), inp, info.input_mean, info.input_std)
        it.set_tensor(inp["index"], encoded)
        it.invoke()
        raw = it.get_tensor(outd["index"])
        case = _output_case(out, f"model_{p['name']}", raw, np.dtype(outd["dtype"]).name,
                            float(outd["quantization"][0]), int(outd["quantization"][1]), info.output_kind)
        for row in case["topk"]:
            row.append(labels[row[0]] if row[0] < len(labels) else f"class {row[0]}")
        rel = f"model/{p['name']}.input.enc"
        write(os.path.join(out, rel), np.ascontiguousarray(encoded).tobytes())
        rows.append(dict(case, photo=p["name"], encoded=rel))
    return {
        "file": "model/model.tflite",
        "input": _tensor_details(inp),
        "output": _tensor_details(outd),
        "metadata": {"name": info.name, "spec": info.spec.to_dict(), "input_mean": list(info.input_mean),
                     "input_std": list(info.input_std), "output": info.output_kind,
                     "labels": len(labels), "labels_file": "model/labels.txt"},
        "photos": rows,
    }


def _jpeg_with_size(template: bytes, width: int, height: int) -> bytes:
    """``template`` (a baseline JPEG) with its frame header claiming width x height: enough for draft()."""
    d = bytearray(template)
    i = d.index(b"\xff\xc0")  # SOF0: marker, length(2), precision(1), height(2), width(2)
    d[i + 5:i + 7] = height.to_bytes(2, "big")
    d[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(d)


def export_draft(out: str) -> dict:
    """Pillow's JPEG draft for the SDK's rule (short side >= int(2 * size / crop_fraction)).

    Photos up to 12 MP are real JPEGs decoded by ``edge.preprocess.open_image`` (the SDK's own path);
    bigger ones only claim their size in the header (Pillow picks the scale from the header alone).
    """
    from edge.variants import MODEL_NAMES

    variants = []
    for name in MODEL_NAMES:
        spec = preprocess_spec(name)
        variants.append({"variant": name, "size": spec.size, "crop_fraction": spec.crop_fraction,
                         "min_short_side": int(2 * spec.size / spec.crop_fraction)})
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 130, 140)).save(buf, "JPEG")
    template = buf.getvalue()
    sizes = [(4032, 3024), (3024, 4032), (4000, 3000), (2048, 1536), (1024, 1024), (1023, 2000), (1025, 1025),
             (2047, 2047), (1000, 700), (600, 400), (4096, 1024), (1264, 3000), (8192, 8192), (12000, 9000),
             (12000, 4000), (65000, 513)]
    cases = []
    for w, h in sizes:
        real = w * h <= 12_500_000
        if real:
            jpeg = io.BytesIO()
            Image.new("RGB", (w, h), (120, 130, 140)).save(jpeg, "JPEG", quality=50)
        for min_short in (512, 1264):
            with warnings.catch_warnings():  # 108 MP is above Pillow's decompression-bomb warning size
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if real:
                    img = open_image(jpeg.getvalue(), draft_size=min_short)
                else:
                    img = Image.open(io.BytesIO(_jpeg_with_size(template, w, h)))
                    scale = max(1.0, min(w, h) / float(min_short))  # as edge.preprocess.open_image asks
                    img.draft("RGB", (int(w / scale), int(h / scale)))
            cases.append({"width": w, "height": h, "min_short_side": min_short,
                          "how": "decoded" if real else "header",
                          "decoded_width": img.width, "decoded_height": img.height})
    return {"variants": variants, "cases": cases}


def export_archives(out: str, spec, model: str) -> list[dict]:
    info = {"format": "efficientnet-edge/1", "model": model, "spec": spec.to_dict(),
            "input_mean": [127.0], "input_std": [128.0], "output": "probabilities", "labels_file": "labels.txt"}
    labels = "".join(f"label {i}\n" for i in range(1000))
    rows = []
    rng = np.random.default_rng(5)
    for name, method in (("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED)):
        # Flatbuffer stand-in: "TFL3" identifier and random bytes, with a fake EOCD signature inside.
        prefix = bytearray(b"\x1c\x00\x00\x00TFL3") + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
        prefix[3000:3004] = b"PK\x05\x06"
        buf = io.BytesIO(bytes(prefix))
        with zipfile.ZipFile(buf, "a", compression=method) as zf:
            zf.writestr("labels.txt", labels)
            zf.writestr("efficientnet_edge.json", json.dumps(info))
        rel = f"archives/{name}.tflite"
        write(os.path.join(out, rel), buf.getvalue())
        rows.append({"file": rel, "labels": 1000, "size": spec.size, "crop_fraction": spec.crop_fraction})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory to write the vectors into")
    ap.add_argument("--model", default="lite0", help="variant whose PreprocessSpec to use without --tflite")
    ap.add_argument("--tflite", help="a model written by the SDK: the photos use its spec, and model/ is added")
    args = ap.parse_args(argv)
    spec, name = preprocess_spec(args.model), args.model
    if args.tflite:
        from edge.metadata import read_metadata
        info = read_metadata(args.tflite)
        if info is None or info.spec is None:
            raise SystemExit(f"{args.tflite}: no efficientnet-edge metadata (convert it with efficientnet-convert)")
        spec, name = info.spec, info.name
    os.makedirs(args.out, exist_ok=True)
    photos = export_photos(args.out, spec)
    manifest = {
        "model_name": name,
        "spec": spec.to_dict(),
        "photos": photos,
        "resize": export_resize(args.out),
        "orientation": export_orientation(args.out),
        "outputs": export_outputs(args.out),
        "archives": export_archives(args.out, spec, name),
        "draft": export_draft(args.out),
    }
    if args.tflite:
        manifest["model"] = export_model(args.out, photos, args.tflite)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(photos)} photos, {len(manifest['resize'])} resize cases, {len(manifest['outputs'])} output "
          f"vectors, {len(manifest['draft']['cases'])} draft cases"
          f"{', the model and its outputs on every photo' if args.tflite else ''} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
