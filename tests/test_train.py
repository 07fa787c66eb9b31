"""efficientnet-train end to end, CI-sized, as users meet it: digits (4 classes, 96 PNGs) →
lite0 at 64 px, one epoch per phase → fp32 + int8 .tflite that EdgeClassifier and MediaPipe read
with the digit names. The run is killed twice on the way (a real SIGKILL while a checkpoint is
being written, a real SIGTERM in the middle of the int8 conversion) and finished with --resume.
The full-size run is benchmarks/train_digits.py."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from benchmarks.train_digits import write_digits
from edge import EdgeClassifier, read_metadata
from training import checkpoint as ckpt
from training.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64
CLASSES = ["0", "1", "2", "3"]
FINAL = {"model.weights.h5", "model_fp32.tflite", "model_int8.tflite", "report.json", "report.md",
         "confusion_matrix.png"}


class Child:
    """``efficientnet-train`` in a child process; stderr lines collected as they come."""

    def __init__(self, args, env=None):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "training.cli", *args], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text, count=1, timeout=900):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(text in ln for ln in self.lines) >= count:
                return
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"exited {self.proc.returncode} first:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail("timed out:\n" + "\n".join(self.lines[-20:]))

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc


def _temps(folder):
    return [os.path.join(r, f) for r, _, files in os.walk(folder) for f in files if f.endswith(".tmp")]


def _run_args(data, out, *extra):
    """efficientnet-train's arguments for the CI-sized run: lite0 at SIZE px, one epoch per
    phase, 32 calibration images."""
    return [str(data), "--model", "lite0", "--output", str(out), "--input-size", str(SIZE),
            "--head-epochs", "1", "--epochs", "1", "--batch-size", "16", "--learning-rate", "3e-3",
            "--test-split", "0.2", "--num-calibration", "32", *extra, "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run, interrupted twice and resumed; what each interruption left is recorded."""
    root = tmp_path_factory.mktemp("train")
    write_digits(str(root / "digits"), per_class=24, classes=(0, 1, 2, 3))
    out, assets = root / "run", root / "android_assets"
    seen = {}
    # 1. SIGKILL while the second checkpoint write (after epoch 1) pauses between its temp file
    #    and the rename (a test hook of edge.cliutil): the process gets no chance to clean up.
    child = Child(_run_args(root / "digits", out), env={"EFFICIENTNET_EDGE_TEST_WRITE_DELAY": "3"})
    child.wait_for("last.npz", count=2)
    os.kill(child.proc.pid, signal.SIGKILL)
    seen["sigkill_rc"] = child.finish()
    time.sleep(1)  # the worker process dies with its parent (PR_SET_PDEATHSIG)
    seen["after_kill"] = set(os.listdir(out)), _temps(out), ckpt.load(str(out / "checkpoints" / "last.npz"))
    # 2. --resume (no DATA: the folder knows), then SIGTERM during the int8 conversion.
    child = Child(["--output", str(out), "--resume", "--quiet"])
    child.wait_for("converting to fp32 and int8")
    time.sleep(1)
    t0 = time.monotonic()
    child.proc.send_signal(signal.SIGTERM)
    seen["sigterm_rc"], seen["sigterm_seconds"] = child.finish(), time.monotonic() - t0
    seen["sigterm_lines"] = child.lines
    seen["after_term"] = set(os.listdir(out)), _temps(out), ckpt.load(str(out / "checkpoints" / "last.npz"))
    # 3. --resume to the end: training is complete, so it only exports.
    assert main(["--output", str(out), "--resume", "--android-assets", str(assets), "--quiet"]) == 0
    with open(out / "report.json", encoding="utf-8") as f:
        report = json.load(f)
    return out, assets, report, seen


def test_sigkill_keeps_the_last_good_checkpoint_and_no_partial_output(run):
    _, _, _, seen = run
    names, temps, kept = seen["after_kill"]
    assert seen["sigkill_rc"] == -signal.SIGKILL
    assert (kept.state.phase, kept.state.epoch) == (1, 1)  # the checkpoint of epoch 1, whole
    assert [os.path.basename(t).split(".")[1] for t in temps] == ["last"]  # the write in flight...
    assert not FINAL & names  # ...never reached a final path


def test_sigterm_stops_the_conversion_within_seconds_and_leaves_nothing(run):
    _, _, _, seen = run
    names, temps, kept = seen["after_term"]
    assert seen["sigterm_rc"] == 130 and seen["sigterm_seconds"] < 10
    assert seen["sigterm_lines"][-1] == "efficientnet-train: interrupted"
    assert any("resuming from" in ln and "phase 1, 1 epochs done" in ln for ln in seen["sigterm_lines"])
    assert not temps and not FINAL & names  # the stale temp file of step 1 was removed too
    assert kept.state.phase == 3  # training had finished and was checkpointed


def test_resume_finishes_with_the_epochs_trained_before_the_kill(run):
    out, _, report, seen = run
    assert not _temps(out)
    assert [(h["phase"], h["epoch"]) for h in report["history"]] == [(1, 1), (2, 1)]
    assert report["history"][0] == seen["after_kill"][2].state.history[0]


def _test_split(out):
    with open(out / "split.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    return [str(out / r["path"]) for r in rows], [CLASSES.index(r["label"]) for r in rows]


def test_every_output_is_written_whole(run):
    out, assets, report, _ = run
    names = {"model.weights.h5", "model_fp32.tflite", "model_int8.tflite", "report.json",
             "report.md", "confusion_matrix.png", "labels.txt", "split.csv", "config.json",
             "checkpoints"}
    assert set(os.listdir(out)) == names  # nothing else: no temp file left
    assert sorted(os.listdir(out / "checkpoints")) == ["best.npz", "last.npz"]
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "labels.txt").read_text().split() == CLASSES
    assert report["images"] == {"train": 68, "val": 8, "test": 20}
    assert [c["name"] for c in report["per_class"]] == CLASSES
    assert sum(c["images"] for c in report["per_class"]) == 20
    assert [h["phase"] for h in report["history"]] == [1, 2]
    md = (out / "report.md").read_text()
    assert f"| int8 .tflite | {100 * report['quantized_accuracy']:.1f} % |" in md
    assert report["conversion"]["input"]["dtype"] == "uint8"
    assert report["conversion"]["calibration_samples"] == 32
    # no --recipe: the converter's default recipe, as efficientnet-convert --int8 applies it
    applied = "gptq+bias-correction+range-mse"
    assert report["recipe"] == report["conversion"]["recipe"]["recipe"] == applied
    assert f"int8 recipe applied by the converter: `{applied}`" in md


@pytest.mark.slow  # the qat worker (tf_keras + tfmot) adds about a minute to a run
def test_qat_fine_tunes_the_exported_int8_model_after_the_default_recipe(tmp_path):
    write_digits(str(tmp_path / "digits"), per_class=24, classes=(0, 1, 2, 3))
    out = tmp_path / "run"
    assert main(_run_args(tmp_path / "digits", out, "--qat")) == 0
    with open(out / "report.json", encoding="utf-8") as f:
        report = json.load(f)
    applied = "gptq+bias-correction+qat+range-mse"  # the default recipe, then fine-tuning
    assert report["recipe"] == report["conversion"]["recipe"]["recipe"] == applied
    qat = [s for s in report["conversion"]["recipe"]["steps"] if s["step"] == "qat"]
    assert len(qat) == 1 and qat[0]["images"] == 32 and qat[0]["seconds"] > 0
    assert report["agreement"] >= 0.8


def test_the_report_holds_what_edgeclassifier_measures_on_the_test_split(run):
    out, _, report, _ = run
    paths, truth = _test_split(out)
    top1 = {}
    for precision in ("fp32", "int8"):
        with EdgeClassifier(str(out / f"model_{precision}.tflite"), top_k=1) as clf:
            top1[precision] = np.array([clf.predict(p)[0].index for p in paths])
    assert report["float_accuracy"] == pytest.approx(np.mean(top1["fp32"] == truth))
    assert report["quantized_accuracy"] == pytest.approx(np.mean(top1["int8"] == truth))
    assert report["agreement"] == pytest.approx(np.mean(top1["fp32"] == top1["int8"]))
    # one epoch per phase on 68 images already learns the digits (chance is 25 %)
    assert report["float_accuracy"] >= 0.6
    assert report["agreement"] >= 0.8


def test_edgeclassifier_and_mediapipe_return_the_users_class_names(run):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from edge.preprocess import preprocess

    out, _, _, _ = run
    model = str(out / "model_int8.tflite")
    assert read_metadata(model).labels == CLASSES
    paths, truth = _test_split(out)
    with EdgeClassifier(model, top_k=4) as clf:
        assert clf.labels == CLASSES and clf.input_size == SIZE
        ours = [clf.predict(p) for p in paths]
        spec = clf.spec
    assert all(c.label == CLASSES[c.index] for cats in ours for c in cats)
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model), max_results=4)
    same = 0
    with vision.ImageClassifier.create_from_options(options) as clf:
        for p, cats in zip(paths, ours):
            img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(preprocess(p, spec)))
            got = clf.classify(img).classifications[0].categories
            assert {c.category_name for c in got} == set(CLASSES)
            assert got[0].category_name == CLASSES[got[0].index]
            same += got[0].index == cats[0].index
    assert same >= 0.9 * len(paths)  # same pixels in, same int8 model: same answers


def test_android_assets_get_the_int8_model(run):
    out, assets, _, _ = run
    assert os.listdir(assets) == ["model.tflite"]
    assert (assets / "model.tflite").read_bytes() == (out / "model_int8.tflite").read_bytes()


def test_keras_weights_reload_into_the_sdk_model_and_as_a_starting_point(run):
    from converters.efficientnet import create_model
    from edge.preprocess import preprocess
    from training.model import load_backbone

    out, _, _, _ = run
    weights = str(out / "model.weights.h5")
    model = create_model("lite0", weights, classes=4, input_size=SIZE)
    paths, _ = _test_split(out)
    with EdgeClassifier(str(out / "model_fp32.tflite")) as clf:
        x = np.stack([preprocess(p, clf.spec) for p in paths[:6]])
        served = np.stack([clf.scores(img) for img in x])
    np.testing.assert_allclose(model.predict(x.astype(np.float32), verbose=0), served, atol=1e-4)
    backbone = load_backbone("lite0", weights, SIZE)  # --weights DIR/model.weights.h5 for a new run
    for layer in backbone.layers:
        for a, b in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_fine_tuning_unfreezes_whole_top_blocks_with_batchnorm_frozen():
    from converters.efficientnet import create_model
    from training.model import block_names, set_trainable

    backbone = create_model("lite0", None, include_top=False, input_size=32)
    assert len(block_names(backbone)) == 16
    assert set_trainable(backbone, 2) == ["block6d", "block7a"]
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    assert trainable == {"block6d_expand_conv", "block6d_dwconv", "block6d_project_conv",
                         "block7a_expand_conv", "block7a_dwconv", "block7a_project_conv", "top_conv"}
    assert set_trainable(backbone, 0) == [] and not backbone.trainable_weights
    assert len(set_trainable(backbone, -1)) == 16
    assert not any(layer.trainable for layer in backbone.layers
                   if type(layer).__name__ == "BatchNormalization")


def test_a_variant_without_offline_weights_is_a_clear_error_that_leaves_no_run(tmp_path, capsys):
    write_digits(str(tmp_path / "digits"), per_class=5, classes=(0, 1))
    out = tmp_path / "run"
    rc = main([str(tmp_path / "digits"), "--model", "lite3", "--output", str(out),
               "--input-size", "32", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("efficientnet-train: error: no offline ImageNet weights for lite3")
    assert "efficientnet-lite3 checkpoint" in err[-1]
    assert not out.exists()  # the same command works once the weights are given


def test_class_weights_auto_weigh_each_images_loss(tmp_path):
    import keras
    import tensorflow as tf

    from edge.variants import PreprocessSpec
    from training.fit import Steps
    from training.pipeline import Augment, class_weights, make_dataset

    paths = [p for p, _ in write_digits(str(tmp_path / "d"), per_class=6, classes=(0, 1, 2))][:14]
    labels = np.array([int(os.path.basename(os.path.dirname(p))) for p in paths])
    counts = np.bincount(labels, minlength=3)
    assert len(set(counts.tolist())) > 1  # unbalanced
    w = class_weights(labels, 3)
    np.testing.assert_allclose(w, 14 / (3 * counts), rtol=1e-6)  # scikit-learn's "balanced"
    ds = make_dataset(paths, labels, 3, PreprocessSpec(32), 14, Augment(enabled=False),
                      sample_weights=w[labels])
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros")])
    steps = Steps(model, tf.distribute.get_strategy(), 0.0, global_batch=14)
    steps.start_phase(keras.optimizers.SGD(0.0))
    (batch,) = list(ds)
    loss_sum, correct, n = steps.train(batch)
    # zero weights: every probability is 1/3, so each image's loss is ln 3 times its weight
    assert n == 14 and loss_sum == pytest.approx(np.log(3) * w[labels].sum(), rel=1e-5)
