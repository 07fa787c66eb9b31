"""int8 recipes × fidelity, size, latency and cost, for EfficientNet-Lite0–2 (ImageNet weights).

One table per model, every figure measured in this run:

* calibration: a folder of ``--calib-crops`` random crops (25-100 % of the area, native
  resolution, PNG) of the nine default-set photos, drawn with seed 11; ``efficientnet-convert``
  holds 20 % of the folder's files out (its own agreement report) and calibrates on the rest.
  ``--calib-seeds 11 12 13``: one folder per seed, a row each and their mean. GPTQ's rounding
  moves with the calibration images, so one seed's row is not the recipe's figure.
  Row "default set": the offline default calibration set instead (``calibration=None``).
* evaluation: :func:`calibration.fidelity_set`: ``--n-default`` crops (10-100 % of the area,
  half mirrored) of the same nine photos drawn with ``--eval-seed`` (2026), plus ``--n-heldout``
  crops of three photos that are in no calibration set (astronaut, clock_motion, coins). No
  evaluation input is a calibration input; the held-out photos are never calibrated on. Crops
  of one photo overlap, so their verdicts are correlated and a small set moves with its seed:
  one lite0 model scored 96.0 / 97.2 / 97.7 % strict on sets of 600 (seed 2026), 1,200 (seed 77)
  and 3,000 crops (seed 78). ``--n-default 2500 --n-heldout 500`` gives the steadier figure.
* strict: int8 top-1 == float top-1; ties: also agrees when the int8 top score is shared by the
  float top-1 class (uint8 outputs make exact ties; the default float output ties where its
  int8 logits do); confident: strict where float p >= 0.5;
  in top-5: float top-1 inside int8 top-5; unseen: strict on the held-out photos' crops alone;
  size: of the fp32 .tflite; latency: median XNNPACK latency / plain int8 (ptq), interleaved;
  recipe s: the recipe's own time; convert s: the whole int8 conversion.

    python benchmarks/int8_recipes.py                       # lite0-2, about 2.5 h on 2 cores
    python benchmarks/int8_recipes.py --models lite0 --recipes ptq gptq+bias-correction
    python benchmarks/int8_recipes.py --models lite1 lite2 --recipes --no-default-set  # keep-float rows
    python benchmarks/int8_recipes.py --recipes --keep-float "" --no-default-set --dynamic  # dynamic-range
    python benchmarks/int8_recipes.py --recipes --keep-float-recipes gptq+bias-correction+range-mse \
        --calib-seeds 11 12 13 --no-default-set    # the default recipe over 3 calibration folders
    python benchmarks/int8_recipes.py --recipes --keep-float-recipes gptq+bias-correction+range-mse \
        --calib-seeds 11 12 13 --n-default 2500 --n-heldout 500 --eval-seed 78  # on 3,000 crops
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

RECIPES = ["ptq", "bias-correction", "gptq", "range-mse", "gptq+bias-correction",
           "gptq+bias-correction+range-mse", "gptq+bias-correction+bias-tune", "gptq+bias-correction+qat"]
CALIB_SEED = 11


def write_calibration_folder(folder: str, n: int, seed: int = CALIB_SEED) -> None:
    """``n`` random crops (25-100 % of the area) of the default-set photos, at native resolution."""
    from PIL import Image

    from edge.preprocess import open_image
    from edge.samples import sample_photos

    rng = np.random.default_rng(seed)
    photos = sample_photos("default")
    for i in range(n):
        p = photos[i % len(photos)]
        img = open_image(p.path)
        w, h = img.size
        a = rng.uniform(0.25, 1.0) * w * h
        r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(min(w, round(np.sqrt(a * r)))), int(min(h, round(np.sqrt(a / r))))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = img.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(os.path.join(folder, f"{p.name}_{i:04d}.png"))


def scores(model: bytes, pixels: np.ndarray) -> np.ndarray:
    from edge import EdgeClassifier

    with EdgeClassifier(model, top_k=5) as clf:
        return np.stack([clf.scores(img) for img in pixels])


def row(name: str, data: bytes, report, ref: np.ndarray, fset, fp32_size: int, plain: bytes | None,
        seconds: float) -> dict:
    from converters.tflite import latency_ratio
    from edge.evaluate import agreement_summary, output_quantization

    q = scores(data, fset.pixels)
    s = agreement_summary(ref, q, output_quantization(data))
    unseen = fset.groups["held-out photos"]
    u = agreement_summary(ref[unseen], q[unseen], output_quantization(data))
    rec = report.recipe
    return {"recipe": name, "strict": s.agree, "ties": s.agree_ties, "confident": s.confident_agree,
            "confident_inputs": s.confident, "in_top5": s.ref_in_top5, "unseen_strict": u.agree,
            "unseen_ties": u.agree_ties, "kl_mean": s.kl_mean,
            "size_of_fp32": len(data) / fp32_size,
            "latency_vs_ptq": latency_ratio(data, plain, fset.pixels[0], runs=50) if plain else None,
            # the conversion's own measurement: this model / the same recipe all int8, interleaved
            "latency_vs_all_int8": report.keep_float.latency_ratio if report.keep_float else None,
            "recipe_seconds": rec.seconds if rec else 0.0, "convert_seconds": round(seconds, 1),
            "report_agreement": report.agreement.strict if report.agreement else None,
            "report_inputs": report.agreement.inputs if report.agreement else 0}


def mean_row(rows: list[dict]) -> dict:
    """The mean of one recipe's rows over calibration seeds (strict range in the label)."""
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    out = {k: (float(np.mean([r[k] for r in rows])) if all(number(r.get(k)) for r in rows) else v)
           for k, v in rows[0].items()}
    strict = [r["strict"] for r in rows]
    out["recipe"] = (rows[0]["recipe"].rsplit(", seed", 1)[0] + f", **mean of {len(rows)} seeds** "
                     f"(strict {min(strict):.1%}-{max(strict):.1%})")
    out["confident_inputs"] = rows[0]["confident_inputs"]
    for k in ("latency_vs_ptq", "latency_vs_all_int8"):
        out[k] = None if any(r.get(k) is None for r in rows) else out[k]
    return out


def print_table(model: str, rows: list[dict]) -> None:
    print(f"\n{model}: int8 vs its float model")
    print("| recipe | strict | ties | confident (n) | in top-5 | unseen photos strict / ties "
          "| size/fp32 | latency/ptq | latency/all-int8 | recipe s | convert s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        latency = "–" if r["latency_vs_ptq"] is None else f"{r['latency_vs_ptq']:.2f}x"
        mixed = "–" if r.get("latency_vs_all_int8") is None else f"{r['latency_vs_all_int8']:.2f}x"
        print(f"| {r['recipe']} | {r['strict']:.1%} | {r['ties']:.1%} | {r['confident']:.1%} "
              f"({r['confident_inputs']}) | {r['in_top5']:.1%} | {r['unseen_strict']:.1%} / "
              f"{r['unseen_ties']:.1%} | {r['size_of_fp32']:.1%} | {latency} | {mixed} | "
              f"{r['recipe_seconds']:.0f} | {r['convert_seconds']:.0f} |")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lite0", "lite1", "lite2"])
    ap.add_argument("--recipes", nargs="*", default=RECIPES,
                    help="recipes to run on the folder (none: only the keep-float / default-set rows)")
    ap.add_argument("--keep-float", default="auto",
                    help="also run --keep-float-recipes with this keep_float ('' to skip)")
    ap.add_argument("--keep-float-recipes", nargs="*", default=None,
                    help="recipes run with --keep-float (default: gptq+bias-correction, the default "
                         "recipe, and it + qat)")
    ap.add_argument("--no-default-set", action="store_true", help="skip the default-set row")
    ap.add_argument("--dynamic", nargs="*", default=None, metavar="RECIPE",
                    help="also dynamic-range rows: plain, and these weight recipes calibrated on "
                         "the default set (default: gptq+bias-correction)")
    ap.add_argument("--calib-crops", type=int, default=300)
    ap.add_argument("--calib-seeds", type=int, nargs="+", default=[CALIB_SEED],
                    help="folder rows: one calibration folder per seed, a row each, plus their mean "
                         "(GPTQ's rounding moves with the calibration images: one seed's row can be "
                         "1.5 pt off the mean)")
    ap.add_argument("--num-calibration", type=int, default=None,
                    help="default-set row: calibration images (default: the converter's default)")
    ap.add_argument("--n-default", type=int, default=500)
    ap.add_argument("--n-heldout", type=int, default=100)
    ap.add_argument("--eval-seed", type=int, default=None,
                    help="seed of the evaluation crops (default: calibration.FIDELITY_SEED, 2026)")
    ap.add_argument("--json", default="out/int8_recipes.json")
    args = ap.parse_args()

    from calibration import DEFAULT_NUM_SAMPLES, fidelity_set
    from calibration.defaults import FIDELITY_SEED
    from converters.cli import kept_summary
    from converters.efficientnet import create_model
    from converters.recipes import DEFAULT_RECIPE
    from converters.tflite import convert
    from edge.evaluate import agreement_summary
    from edge.sysinfo import cpu_line
    from edge.variants import preprocess_spec

    print(cpu_line())
    results = {"cpu": cpu_line(), "models": {}}
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for seed in args.calib_seeds:
            folders[seed] = os.path.join(tmp, f"seed{seed}")
            os.makedirs(folders[seed])
            write_calibration_folder(folders[seed], args.calib_crops, seed)
        for name in args.models:
            spec = preprocess_spec(name)
            model = create_model(name, weights="imagenet")
            fset = fidelity_set(spec, args.n_default, args.n_heldout,
                                seed=FIDELITY_SEED if args.eval_seed is None else args.eval_seed)
            ref = np.asarray(model.predict(fset.pixels.astype(np.float32), verbose=0, batch_size=16))
            fp32, _ = convert(model, "fp32")
            top2 = np.sort(ref, axis=1)[:, -2:]
            close = int((top2[:, 1] - top2[:, 0] < 1 / 256).sum())
            seeds = ", ".join(map(str, args.calib_seeds))
            print(f"\n{name}: evaluated on {fset.description}; calibrated on {args.calib_crops} "
                  f"crops (seed {seeds}; 25-100 % of the area) of the default-set photos, "
                  f"80 % of the files")
            # the float probabilities themselves on the uint8 output's grid (1/256): the cap
            # efficientnet-evaluate reports beside strict agreement
            cap = agreement_summary(ref, ref, (1 / 256, 0, np.uint8)).agree_cap
            print(f"{close} of the {len(ref)} inputs have float top-1 and top-2 probabilities closer "
                  "than 1/256 (the uint8 output's step): int8 mostly ties or swaps them. The float "
                  f"model's own outputs rounded to that step agree on {cap:.1%} strict: the cap of "
                  "a uint8 output (full-integer rows; the default's float32 output, a float "
                  "softmax on int8 logits, is not held to it)")
            rows, plain = [], None
            # (recipe, calibration folder's seed or None for the default set, keep_float)
            runs = [(r, seed, "none") for r in args.recipes for seed in folders]  # all int8
            if args.keep_float:
                keep_recipes = (args.keep_float_recipes if args.keep_float_recipes is not None
                                else ["gptq+bias-correction", DEFAULT_RECIPE, f"{DEFAULT_RECIPE}+qat"])
                runs += [(r, seed, args.keep_float) for r in keep_recipes for seed in folders]
            if not args.no_default_set:
                runs.append((None, None, "default"))  # convert()'s defaults, default set
            if args.dynamic is not None:  # dynamic-range: plain, then each weight recipe
                runs += [(r, None, "dynamic") for r in ["ptq", *(args.dynamic or ["gptq+bias-correction"])]]
            for recipe, seed, keep in runs:
                calib = folders.get(seed)
                t = time.perf_counter()
                precision = "dynamic" if keep == "dynamic" else "int8"
                if precision == "dynamic":
                    keep = None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data, report = convert(model, precision, calibration=calib, recipe=recipe,
                                           num_samples=args.calib_crops if calib else
                                           args.num_calibration or DEFAULT_NUM_SAMPLES, keep_float=keep,
                                           layer_report=0)
                seconds = time.perf_counter() - t
                if recipe == "ptq" and calib is not None and plain is None:
                    plain = data
                kept = (kept_summary(report.keep_float.layers, report.keep_float.whole_stages)
                        if report.keep_float else "none chosen")
                name_ = report.recipe.recipe if report.recipe else "ptq"
                label = name_ + ("" if keep in ("none", None) else f" + keep-float auto ({kept})")
                if precision == "dynamic":
                    label = f"dynamic-range {name_}" + (f", default set ({report.calibration_samples} crops)"
                                                        if report.recipe else "")
                elif calib is None:
                    label = (f"defaults, default set ({report.calibration_samples} crops): {label}")
                elif len(folders) > 1:
                    label += f", seed {seed}"
                rows.append(row(label, data, report, ref, fset, len(fp32), plain, seconds))
                strict = rows[-1]["strict"]
                if len(folders) > 1 and seed == list(folders)[-1]:
                    rows.append(mean_row(rows[-len(folders):]))
                results["models"][name] = {"evaluation": fset.description, "rows": rows}
                with open(args.json + ".tmp", "w") as f:
                    json.dump(results, f, indent=1)
                os.replace(args.json + ".tmp", args.json)
                print(f"  {label}: strict {strict:.1%} ({time.strftime('%H:%M')}, "
                      f"load {os.getloadavg()[0]:.1f})", flush=True)
            print_table(name, rows)
    print(f"\n{cpu_line()}\nJSON: {args.json}")


if __name__ == "__main__":
    main()
