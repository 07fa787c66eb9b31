"""efficientnet-evaluate and edge.evaluate on the real lite0 int8/fp32 models and real photos."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from converters.evaluate_cli import main
from edge.evaluate import (EvalOptions, EvaluateError, EvalResult, agreement_summary, compare,
                           evaluate, image_set, kl_divergence, match_labels, merge)
from edge.preprocess import preprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(argv: list[str]) -> int:
    """Run efficientnet-evaluate in-process; argparse's usage errors exit via SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def astronaut() -> str:
    """scikit-image's astronaut: a photo the default calibration set never saw."""
    spec = importlib.util.find_spec("skimage")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "astronaut.png")
    if not os.path.isfile(path):
        pytest.skip("scikit-image's astronaut.png is not installed")
    return path


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory, photos):
    """A CSV of the shipped photos labelled by class index, plus the astronaut without a label
    and a file that is not an image."""
    root = tmp_path_factory.mktemp("evalset")
    rows = []
    for p in photos:
        dst = root / "img" / os.path.basename(p.path)
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(p.path, dst)
        rows.append([f"img/{dst.name}", str(p.classes[0])])
    shutil.copy(astronaut(), root / "img" / "astronaut.png")
    rows.append(["img/astronaut.png", ""])
    (root / "img" / "broken.jpg").write_bytes(b"not a jpeg at all")
    rows.append(["img/broken.jpg", "281"])
    with open(root / "set.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], *rows])
    return root / "set.csv"


def plain_litert(model_path: str, paths: list[str]) -> np.ndarray:
    """Probabilities from ai_edge_litert's Interpreter, hand-written I/O: raw pixels in (uint8
    for the Lite int8 models, float32 for fp32), a uint8 output dequantised by hand."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.variants import preprocess_spec

    interp = Interpreter(model_path=model_path, num_threads=os.cpu_count())
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for path in paths:
        x = preprocess(path, preprocess_spec("lite0"), draft=True)
        interp.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        scale, zp = out["quantization"]
        rows.append((y.astype(np.float64) - zp) * scale if scale else y.astype(np.float64))
    return np.array(rows)


def test_numbers_equal_a_plain_litert_loop(converted, full_int8, labelled_csv, tmp_path, capsys):
    """Two candidates: the default int8 model (float32 output: a float softmax on int8 logits)
    and a full-integer one (uint8 output, which has a floor and a cap)."""
    int8, fp32 = converted["int8"][0], converted["fp32"][0]
    out = tmp_path / "eval.json"
    rc = main([int8, full_int8, "--reference", fp32, "--images", str(labelled_csv), "--json",
               str(out), "--quiet", "--confident", "0.5"])
    assert rc == 0
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if "broken.jpg" in ln]) == 1  # listed once, skipped
    res = json.loads(out.read_text())
    assert res["images"]["failed"][0][0] == "img/broken.jpg"

    rows = list(csv.reader(open(labelled_csv)))[1:-1]  # all but broken.jpg
    paths = [str(labelled_csv.parent / r[0]) for r in rows]
    labels = [int(r[1]) if r[1] else None for r in rows]
    p = plain_litert(fp32, paths)
    ref1 = p.argmax(1)
    ref_order = np.argsort(-p, axis=1, kind="stable")[:, :5]
    lab = [i for i, v in enumerate(labels) if v is not None]
    r = res["summary"]["reference"]
    assert r["top1"] == np.mean([ref1[i] == labels[i] for i in lab])
    assert r["top5"] == np.mean([labels[i] in ref_order[i] for i in lab])
    assert r["ms_mean"] > 0

    def kl(a, b, eps=1e-6):  # the documented formula, written out again
        a, b = a / a.sum(), b / b.sum()
        a, b = (a + eps) / (1 + a.size * eps), (b + eps) / (1 + b.size * eps)
        return np.sum(a * np.log(a / b))

    for k, (path, uint8_out) in enumerate(((int8, False), (full_int8, True))):
        s = res["summary"]["candidates"][k]
        assert s["images"] == 10
        q = plain_litert(path, paths)
        cand1 = q.argmax(1)  # numpy argmax: the first (lowest) index among ties
        order = np.argsort(-q, axis=1, kind="stable")[:, :5]
        assert s["labelled"] == len(lab) == 9
        assert s["top1"] == np.mean([cand1[i] == labels[i] for i in lab])
        assert s["top5"] == np.mean([labels[i] in order[i] for i in lab])
        assert s["agree"] == np.mean(cand1 == ref1)
        ties = q[np.arange(len(q)), ref1] == q.max(1)
        assert s["agree_ties"] == np.mean((cand1 == ref1) | ties)
        conf = p.max(1) >= 0.5
        assert s["confident"] == conf.sum() and s["confident_agree"] == np.mean((cand1 == ref1)[conf])
        assert s["ref_in_top5"] == np.mean([ref1[i] in order[i] for i in range(len(q))])
        assert s["kl_mean"] == pytest.approx(np.mean([kl(a, b) for a, b in zip(p, q)]), rel=1e-9)
        assert s["ms_mean"] > 0
        if uint8_out:
            # The floor and the cap: the reference's own probabilities on the uint8 grid, its KL
            # and its argmax (lower index on ties).
            grid = np.clip(np.rint(p * 256), 0, 255) / 256
            floor = np.mean([kl(a, g) for a, g in zip(p, grid)])
            assert s["kl_floor"] == pytest.approx(floor, rel=1e-9)
            assert s["agree_cap"] == np.mean(grid.argmax(1) == ref1)
        else:  # a float output has no grid to round the reference to
            assert s["kl_floor"] is None and s["agree_cap"] is None
        # Per-image records hold the same top-5 the plain loop found.
        for rec, o in zip(res["records"], order):
            assert rec["cand"][k]["top"][0] == list(o)


def test_shards_merge_to_exactly_the_unsharded_run(converted, labelled_csv, tmp_path, capsys):
    int8, fp32 = converted["int8"][0], converted["fp32"][0]
    whole = evaluate(fp32, [int8], labelled_csv)
    parts = []
    for i in (1, 2, 3):
        path = tmp_path / f"part{i}.json"
        assert main([int8, "--reference", fp32, "--images", str(labelled_csv), "--shard", f"{i}/3",
                     "--json", str(path), "--quiet"]) == 0
        parts.append(str(path))
    assert {r["i"] for r in EvalResult.load(parts[0]).records} == {0, 3, 6, 9}
    merged_path, csv_path = tmp_path / "merged.json", tmp_path / "dis.csv"
    assert main(["merge", *parts, "--json", str(merged_path), "--disagreements", str(csv_path)]) == 0
    merged = EvalResult.load(merged_path)

    def timeless(res: EvalResult) -> dict:
        d = json.loads(res.to_json())
        for rec in d["records"]:
            rec.pop("ref_ms")
            for c in rec["cand"]:
                c.pop("ms")
        for s in [d["summary"]["reference"], *d["summary"]["candidates"]]:
            s.pop("ms_mean"), s.pop("ms_p50")
        return d
    assert timeless(merged) == timeless(whole)
    assert merged.images["failed"] == whole.images["failed"]
    assert [f[0] for f in merged.images["failed"]] == ["img/broken.jpg"]
    # Merging the parts in another order changes nothing; a missing or repeated shard is refused.
    assert timeless(merge(parts[::-1])) == timeless(whole)
    capsys.readouterr()
    assert main(["merge", parts[0], parts[2]]) == 2
    assert "shards missing: 2/3" in capsys.readouterr().err
    with pytest.raises(EvaluateError, match="twice"):
        merge([parts[0], parts[0], parts[1], parts[2]])


def test_disagreement_csv_rows_are_the_strict_disagreements(converted, labelled_csv):
    res = evaluate(converted["fp32"][0], {"int8": converted["int8"][0]}, labelled_csv)
    rows = list(csv.DictReader(res.disagreements_csv().splitlines()))
    bad = [r for r in res.records if not r["cand"][0]["agree"]]
    assert len(rows) == len(bad) == res.candidates[0].disagreements
    for row, rec in zip(rows, bad):
        assert row["image"] == rec["path"] and row["candidate"] == "int8"
        assert int(row["ref_1_index"]) == rec["ref"][0][0] != int(row["cand_1_index"])
        assert row["ref_1"] == res.class_names[rec["ref"][0][0]]
        assert float(row["cand_1_score"]) == pytest.approx(rec["cand"][0]["top"][1][0], rel=1e-5)


def test_runtime_only_path_never_imports_tensorflow(converted, labelled_csv, tmp_path):
    code = ("import sys; from converters.evaluate_cli import main; "
            f"rc = main([{converted['int8'][0]!r}, '--reference', {converted['fp32'][0]!r}, "
            f"'--images', {str(labelled_csv)!r}, '--quiet', '--layers', '2', '--layer-images', '2']); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout
    # rows name Keras layers: conv (or dense) + its BN + its activation, ranked; never the layers
    # the default keeps in float (stem_conv, block1a_dwconv)
    assert "per-layer error of" in proc.stdout
    rows = re.findall(r"^\s+(\d+)\s+((?:stem|top|block\d+[a-z])_\w+)\+\S+\s+(conv|dwconv|dense)\s",
                      proc.stdout, re.M)
    assert [int(r[0]) for r in rows] == [1, 2], proc.stdout
    assert not {r[1] for r in rows} & {"stem_conv", "block1a_dwconv"}


def test_keras_reference_as_a_callable(lite0_imagenet, converted, photos):
    """The fp32 .tflite the CLI wrote makes the same top-1 decisions as the Keras model."""
    from edge.variants import preprocess_spec

    res = evaluate(lambda x: np.asarray(lite0_imagenet(x.astype(np.float32), training=False)),
                   [converted["fp32"][0]], [p.path for p in photos],
                   reference_spec=preprocess_spec("lite0"), reference_name="keras")
    c = res.candidates[0]
    assert c.agree == 1.0 and c.ref_in_top5 == 1.0 and c.kl_mean < 1e-4
    assert res.models[0]["name"] == "keras" and res.images["evaluated"] == len(photos)
    with pytest.raises(EvaluateError, match="preprocessing spec"):
        evaluate(lambda x: x, [converted["fp32"][0]], [photos[0].path])


def test_cli_reference_model_builds_the_keras_model(lite0_imagenet, converted, photos, tmp_path,
                                                    monkeypatch):
    import converters.efficientnet as eff

    asked = []

    def create_model(name, weights=None, **kw):  # the session's real Keras lite0, not a rebuild
        asked.append((name, weights))
        return lite0_imagenet
    monkeypatch.setattr(eff, "create_model", create_model)
    out = tmp_path / "k.json"
    assert main([converted["fp32"][0], "--reference-model", "lite0", "--images",
                 photos[0].path, "--json", str(out), "--quiet"]) == 0
    res = EvalResult.load(out)
    assert asked == [("lite0", "imagenet")]
    assert res.models[0]["name"] == "keras lite0 (imagenet)" and res.candidates[0].agree == 1.0


def test_class_folders_and_label_names(converted, photos, tmp_path, capsys):
    from edge import EdgeClassifier

    root = tmp_path / "folders"
    names = EdgeClassifier(converted["int8"][0]).labels
    for p in photos[:3]:
        d = root / names[p.classes[0]].replace(" ", "_").upper()  # 'TABBY', 'ESPRESSO'...
        d.mkdir(parents=True)
        shutil.copy(p.path, d)
    (root / "not_a_class").mkdir()
    shutil.copy(photos[3].path, root / "not_a_class")
    iset = image_set(root)
    assert iset.kind == "class-folders" and len(iset) == 4
    assert main([converted["int8"][0], "--reference", converted["fp32"][0], "--images", str(root),
                 "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "'not_a_class' (no class of this name)" in cap.err and "agreement only" in cap.err
    assert "4 images from" in cap.out and "3 labelled" in cap.out
    # A loose image at the top makes the folder unlabelled, and says so.
    shutil.copy(photos[4].path, root)
    assert image_set(root).labels is None and "directly in" in image_set(root).note


def test_match_labels_by_name_index_and_ambiguity():
    classes = ["tabby", "tiger cat", "crane", "crane", "Egyptian cat"]
    m = match_labels(["Tabby", "tiger_cat", "1", "egyptian-cat", "crane", "7", "dog"], classes, 5)
    assert m.index == {"Tabby": 0, "tiger_cat": 1, "1": 1, "egyptian-cat": 4}
    assert "ambiguous" in m.unmatched["crane"] and "2, 3" in m.unmatched["crane"]
    assert "out of range" in m.unmatched["7"] and m.unmatched["dog"] == "no class of this name"
    assert "3 of 7 label names match no class" in m.message()


def test_kl_is_zero_for_equal_and_positive_otherwise():
    p = np.array([0.7, 0.2, 0.1, 0.0])
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-15)
    assert kl_divergence(p, np.array([0.1, 0.2, 0.7, 0.0])) > 1.0
    assert np.isfinite(kl_divergence(p, np.array([0.0, 0.0, 0.0, 1.0])))


def test_the_cap_is_the_reference_rounded_to_the_candidates_output():
    """A float near-tie closer than the uint8 step rounds to a tie, which goes to the lower index:
    no uint8-output model can agree there, and the cap says so."""
    uint8 = (1 / 256, 0, np.uint8)
    near_tie = np.array([0.1, 0.3985, 0.4001, 0.1])  # both top scores round to 102 / 256
    clear = np.array([0.1, 0.3, 0.5, 0.1])
    assert compare(near_tie, near_tie, quantization=uint8)["cap"] is False
    assert compare(clear, clear, quantization=uint8)["cap"] is True
    assert compare(near_tie, near_tie)["cap"] is None  # float output: no grid, no cap
    s = agreement_summary(np.stack([near_tie, clear, clear, clear]),
                          np.stack([near_tie, clear, clear, clear]), uint8)
    assert s.agree == 1.0 and s.agree_cap == 0.75
    assert agreement_summary(np.stack([clear]), np.stack([clear])).agree_cap is None


@pytest.mark.parametrize("argv, message", [
    (["m.tflite", "--reference", "r.tflite", "--images", "nowhere/"], "no such model file"),
    (["{int8}", "--reference", "{fp32}", "--images", "nowhere/"], "no such folder or CSV"),
    (["{int8}", "--reference", "{fp32}", "--images", "{csv}", "--shard", "0/2", "--json", "x"],
     "need 1 <= i <= N"),
    (["{int8}", "--reference", "{fp32}", "--images", "{csv}", "--shard", "1/2"], "needs --json"),
    (["{int8}", "--reference-model", "lite0", "--images", "{csv}", "--layers"], "--layers needs"),
    (["{int8}", "--reference", "{fp32}", "--images", "{bad_csv}"], "expected path,label"),
    (["{int8}", "--images", "{csv}"], "one of the arguments --reference --reference-model"),
])
def test_bad_arguments_are_one_line_exit_2(converted, labelled_csv, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("a.jpg,cat,extra\n")
    subs = {"int8": converted["int8"][0], "fp32": converted["fp32"][0], "csv": str(labelled_csv),
            "bad_csv": str(bad)}
    assert cli([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("efficientnet-evaluate")
    assert not (tmp_path / "x").exists()


def test_options_are_validated():
    with pytest.raises(ValueError, match="shard"):
        EvalOptions(shard=(3, 2)).validate()
    with pytest.raises(ValueError, match="confident"):
        EvalOptions(confident=1.5).validate()


def test_reference_model_without_tensorflow_is_a_one_line_error(converted, labelled_csv,
                                                                monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorflow", "keras") else real(name, *a))
    assert cli([converted["int8"][0], "--reference-model", "lite0", "--images", str(labelled_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'efficientnet-edge[convert]'" in err
