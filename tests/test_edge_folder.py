"""Many images: predict_iter / predict_batch pipelining, and `efficientnet-classify DIR -r`."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from _edge_models import edge_models_fixture  # noqa: E402

from edge import ClassifierClosedError, EdgeClassifier, ImageDecodeError  # noqa: E402
from edge.cli import classify_main  # noqa: E402
from edge.folder import iter_images  # noqa: E402
from edge.samples import sample_photos  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """photos/: the shipped photos as JPEG/PNG in two levels, a broken file, a hidden file and
    a text file; returns (root, [image paths in walk order])."""
    root = tmp_path_factory.mktemp("photos")
    sub = root / "b_sub" / "deeper"
    sub.mkdir(parents=True)
    for i, p in enumerate(sample_photos()):
        img = Image.open(p.path).convert("RGB")
        folder = root if i < 4 else sub
        path = folder / (f"{i:02d}_{p.name}.jpg" if i % 2 else f"{i:02d}_{p.name}.png")
        img.save(path)
    (root / "03_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / ".hidden.jpg").write_bytes(b"hidden")
    (root / "notes.txt").write_text("not an image")
    top = sorted(str(p) for p in root.iterdir() if p.is_file() and p.suffix in (".jpg", ".png")
                 and not p.name.startswith("."))
    deep = sorted(str(p) for p in sub.iterdir())
    return root, top + deep


def test_walk_is_sorted_lazy_and_skips_hidden_and_non_images(tree):
    root, want = tree
    assert list(iter_images([str(root)], recursive=True)) == want
    assert list(iter_images([str(root)])) == [p for p in want if "b_sub" not in p]
    assert next(iter(iter_images([str(root)], recursive=True))) == want[0]


def test_predict_iter_matches_predict_in_order_with_per_image_errors(models, tree):
    _, paths = tree
    with EdgeClassifier(models.int8, top_k=3) as clf:
        want = {p: clf.predict(p) for p in paths if "broken" not in p}
        for kw in ({}, {"workers": 1}, {"workers": 3, "interpreters": 1}, {"workers": 2}):
            got = list(clf.predict_iter(paths, **kw))
            assert [g.index for g in got] == list(range(len(paths)))
            assert [g.source for g in got] == paths
            for g in got:
                if "broken" in g.source:
                    assert isinstance(g.error, ImageDecodeError) and g.categories == []
                else:
                    assert g.ok and g.categories == want[g.source], kw


def test_predict_iter_scores_are_those_of_predict(models, tree):
    _, paths = tree
    paths = [p for p in paths if "broken" not in p]
    with EdgeClassifier(models.fp32) as clf:
        want = np.stack([clf.scores(p) for p in paths])
        got = np.stack([g.scores for g in clf.predict_iter(paths, with_scores=True, workers=2)])
    assert np.array_equal(got, want)


def test_predict_iter_reads_its_input_lazily(models):
    photos = [p.path for p in sample_photos()]
    pulled = []

    def source():
        for i in range(10_000):
            pulled.append(i)
            yield photos[i % len(photos)]

    with EdgeClassifier(models.int8) as clf:
        it = clf.predict_iter(source(), workers=2, prefetch=4)
        first = [next(it) for _ in range(3)]
        assert [p.index for p in first] == [0, 1, 2]
        assert len(pulled) <= 3 + 4 + 1  # bounded look-ahead, not the whole 10,000
        it.close()


def test_predict_batch_stops_at_the_first_bad_image(models, tree):
    _, paths = tree
    with EdgeClassifier(models.int8) as clf:
        good = [p for p in paths if "broken" not in p]
        assert clf.predict_batch(good, workers=2) == [clf.predict(p) for p in good]
        with pytest.raises(ImageDecodeError, match="broken"):
            clf.predict_batch(paths)
    with pytest.raises(ClassifierClosedError):
        list(clf.predict_iter(good))
    with pytest.raises(ValueError, match="workers"):
        EdgeClassifier(models.int8).predict_batch(good, workers=0)


def test_classify_folder_recursive_to_csv_file(models, tree, tmp_path, capsys):
    root, paths = tree
    out = tmp_path / "labels.csv"
    old = os.umask(0o022)
    try:
        rc = classify_main([models.int8, str(root), "-r", "--output", str(out), "--top-k", "2",
                            "--no-progress"])
    finally:
        os.umask(old)
    captured = capsys.readouterr()
    assert rc == 2  # one file could not be read; the others were classified
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0].startswith("efficientnet-classify: error: ") and "03_broken.jpg" in err[0]
    assert err[-1].startswith(f"efficientnet-classify: {len(paths) - 1} of {len(paths)} images")
    assert (out.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temp file left
    rows = list(csv.DictReader(out.open()))
    assert [r["image"] for r in rows] == paths
    with EdgeClassifier(models.int8) as clf:
        for r in rows:
            if "broken" in r["image"]:
                assert r["error"] and r["label_1"] == ""
            else:
                c = clf.predict(r["image"], top_k=2)
                assert (r["label_1"], int(r["index_2"])) == (c[0].label, c[1].index)
                assert abs(float(r["score_1"]) - c[0].score) < 1e-6 and r["error"] == ""


def test_classify_folder_jsonl_stdout_not_recursive(models, tree, capsys):
    root, paths = tree
    rc = classify_main([models.int8, str(root), "--format", "jsonl", "--workers", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 2 and [r["image"] for r in rows] == [p for p in paths if "b_sub" not in p]


def test_empty_folder_is_an_error_and_writes_no_output(models, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert classify_main([models.int8, str(empty)]) == 2
    assert "no image files found" in capsys.readouterr().err
    out = tmp_path / "rows.csv"
    assert classify_main([models.int8, str(empty), "--output", str(out)]) == 2
    assert os.listdir(tmp_path) == ["empty"]  # no empty CSV (nor its temp file) left behind
    out.write_text("earlier output\n")
    assert classify_main([models.int8, str(empty), "--output", str(out)]) == 2
    assert out.read_text() == "earlier output\n"


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, **kw)


def test_no_library_log_lines_unless_verbose(models):
    photo = sample_photos()[0].path
    quiet = _cli(models.int8, photo)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    loud = _cli(models.int8, photo, "--verbose")
    assert loud.returncode == 0 and "XNNPACK" in loud.stderr
    assert quiet.stdout == loud.stdout


def test_ctrl_c_stops_a_folder_run_and_leaves_no_output(models, tmp_path):
    big = tmp_path / "src.jpg"
    img = Image.open(sample_photos()[0].path).convert("RGB")
    img.resize((img.width * 4, img.height * 4)).save(big, quality=90)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3000):
        os.symlink(big, folder / f"{i:05d}.jpg")
    out = tmp_path / "out" / "rows.jsonl"
    out.parent.mkdir()
    out.write_text("earlier output\n")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", models.int8, str(folder),
                             "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(os.listdir(out.parent)) < 2:
        time.sleep(0.05)  # wait for the temp file: classification has started
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 130 and err.strip().endswith("efficientnet-classify: interrupted")
    assert os.listdir(out.parent) == ["rows.jsonl"] and out.read_text() == "earlier output\n"
    shutil.rmtree(folder)
