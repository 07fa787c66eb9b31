"""efficientnet-train's data: class folders and CSVs, bad files skipped and named once, clear
errors, the stratified seeded split, and the augmentation (no TensorFlow needed)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from benchmarks.train_digits import write_digits
from training.cli import main
from training.data import (from_csv, load_images, split_csv, stratified_split)
from training.options import DataError, TrainOptions, TrainingError
from training.pipeline import Augment, augmented_image, color_jitter, epoch_order, random_crop_box
from edge.preprocess import preprocess
from edge.variants import preprocess_spec


def _img(path, mode="RGB", size=(40, 30), fmt=None, value=128):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "I;16":
        img = Image.fromarray(np.full(size[::-1], value * 257, np.uint16))  # mode I;16
    else:
        img = Image.new(mode, size, value if mode in ("L", "P", "1") else (value,) * len(mode))
    img.save(path, format=fmt)
    return path


def _folder(root, per_class=4, classes=("cat", "dog")):
    for c in classes:
        for i in range(per_class):
            _img(os.path.join(root, c, f"{i}.png"), value=40 * (i + 1))
    return str(root)


def test_class_folders_nested_files_and_mixed_sizes_and_modes(tmp_path):
    root = tmp_path / "data"
    modes = [("L", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"),
             ("1", "BMP"), ("RGB", "WEBP"), ("LA", "PNG")]
    for i, (mode, fmt) in enumerate(modes):
        ext = {"JPEG": "jpg", "BMP": "bmp", "WEBP": "webp"}.get(fmt, "png")
        _img(str(root / "b" / f"{i}.{ext}"), mode, size=(8 + 37 * i, 8 + 11 * i), fmt=fmt)
    _img(str(root / "a" / "deep" / "er" / "x.png"))
    _img(str(root / "a" / "y.jpg"), fmt="JPEG", size=(1200, 900))
    data = load_images(str(root))
    assert data.classes == ["a", "b"]
    assert np.bincount(data.labels).tolist() == [2, len(modes)]
    spec = preprocess_spec("lite0")
    aug = Augment()
    for k, p in enumerate(data.paths):  # every mode and size reaches the model as size×size×3
        assert augmented_image(p, k, spec, aug).shape == (224, 224, 3)
        assert preprocess(p, spec).shape == (224, 224, 3)


def test_unreadable_and_non_image_files_are_skipped_and_named_once(tmp_path):
    root = tmp_path / "data"
    _folder(root)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (root / "dog" / "fake.jpg").write_text("this is text")
    good = root / "dog" / "0.png"
    (root / "dog" / "cut.png").write_bytes(good.read_bytes()[:60])  # truncated PNG
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        data = load_images(str(root))
    messages = [str(x.message) for x in w]
    assert len(messages) == 2, messages
    assert "1 files that are not images" in messages[0] and "notes.txt" in messages[0]
    assert "skipped 2 unreadable image files" in messages[1]
    assert "fake.jpg" in messages[1] and "cut.png" in messages[1]
    assert sorted(os.path.basename(p) for p in data.skipped) == ["cut.png", "fake.jpg"]
    assert not any(p.endswith((".txt", ".DS_Store", "fake.jpg", "cut.png")) for p in data.paths)
    assert len(data) == 8


@pytest.mark.parametrize("layout, message", [
    ("empty", "no readable images"),
    ("one_class", "only one class ('cat')"),
    ("loose", "no class sub-folders"),
    ("all_broken", "no readable images"),
])
def test_unusable_data_is_a_clear_error(tmp_path, layout, message):
    root = tmp_path / "data"
    root.mkdir()
    if layout == "one_class":
        _folder(root, classes=("cat",))
    elif layout == "loose":
        _img(str(root / "a.png"))
    elif layout == "all_broken":
        for c in ("a", "b"):
            (root / c).mkdir()
            (root / c / "x.png").write_text("nope")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_images(str(root))


def test_a_class_with_too_few_images_is_named(tmp_path):
    data = load_images(_folder(tmp_path / "d", per_class=3, classes=("ant", "bee")))
    with pytest.raises(DataError, match=r"class 'ant' has 3 readable images; each class needs at least 4"):
        stratified_split(data.labels, data.classes, 0.1, 0.1, seed=0)
    assert stratified_split(data.labels, data.classes, 0.0, 0.1, seed=0).count("test") == 2


def test_split_is_stratified_seeded_and_reproducible(tmp_path):
    write_digits(str(tmp_path / "digits"))
    data = load_images(str(tmp_path / "digits"))
    split = stratified_split(data.labels, data.classes, 0.1, 0.2, seed=0)
    assert split == stratified_split(data.labels, data.classes, 0.1, 0.2, seed=0)
    assert split != stratified_split(data.labels, data.classes, 0.1, 0.2, seed=1)
    s = np.array(split)
    for c in range(10):
        n = int(np.sum(data.labels == c))
        assert np.sum((data.labels == c) & (s == "test")) == round(0.2 * n)
        assert np.sum((data.labels == c) & (s == "val")) == round(0.1 * n)
    assert abs(np.mean(s == "test") - 0.2) < 0.005
    # DIR/split.csv is itself training data giving back the same images, labels and split
    data.split = split
    out = tmp_path / "run"
    out.mkdir()
    (out / "split.csv").write_bytes(split_csv(data, str(out)))
    again = from_csv(str(out / "split.csv"))
    assert [os.path.realpath(p) for p in again.paths] == [os.path.realpath(p) for p in data.paths]
    assert again.classes == data.classes and again.split == split
    assert np.array_equal(again.labels, data.labels)


def test_csv_with_header_relative_paths_and_its_own_split(tmp_path):
    _folder(tmp_path / "imgs")
    rows = ["path,label,split"] + [f"imgs/{c}/{i}.png,{c},{'test' if i == 3 else 'train'}"
                                   for c in ("cat", "dog") for i in range(4)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = from_csv(str(tmp_path / "labels.csv"))
    assert data.classes == ["cat", "dog"] and data.split.count("test") == 2
    assert all(os.path.isfile(p) for p in data.paths)
    (tmp_path / "bad.csv").write_text("imgs/cat/0.png,cat,holdout\n")
    with pytest.raises(DataError, match="split 'holdout'"):
        from_csv(str(tmp_path / "bad.csv"))
    (tmp_path / "nolabel.csv").write_text("imgs/cat/0.png\n")
    with pytest.raises(DataError, match="row 1 has no label"):
        from_csv(str(tmp_path / "nolabel.csv"))


def test_augmentation_is_seeded_and_stays_mild(tmp_path):
    path = _img(str(tmp_path / "x.png"), size=(64, 48), value=100)
    spec = preprocess_spec("lite0")
    a = augmented_image(path, 7, spec, Augment())
    assert np.array_equal(a, augmented_image(path, 7, spec, Augment()))
    rng = np.random.default_rng(0)
    for _ in range(200):
        left, top, right, bottom = random_crop_box(64, 48, rng, 0.5, (3 / 4, 4 / 3))
        assert 0 <= left < right <= 64 and 0 <= top < bottom <= 48
        assert (right - left) * (bottom - top) >= 0.5 * 64 * 48 * 0.74  # ≥ min area (clipped by the edges)
    grey = np.full((4, 4, 3), 100, np.uint8)
    jittered = [int(color_jitter(grey, np.random.default_rng(s), Augment())[0, 0, 0]) for s in range(50)]
    assert 85 <= min(jittered) < 100 < max(jittered) <= 115
    order, seeds = epoch_order(10, 0, 1)
    assert sorted(order.tolist()) == list(range(10))
    assert not np.array_equal(order, epoch_order(10, 0, 2)[0])


def test_options_name_the_bad_flag():
    with pytest.raises(TrainingError, match="--val-split"):
        TrainOptions(data="d", output="o", val_split=1.5).validate()
    with pytest.raises(TrainingError, match="unknown model"):
        TrainOptions(data="d", output="o", model="b9").validate()
    with pytest.raises(TrainingError, match="--qat"):
        TrainOptions(data="d", output="o", qat=True, precision="fp16").validate()
    assert (TrainOptions(data="d", output="o", qat=True).int8_recipe
            == "gptq+bias-correction+qat+range-mse")  # the converter's order of steps
    TrainOptions(data="d", output="o", qat=True).validate()  # the converter's qat step exists
    with pytest.raises(TrainingError, match="unknown recipe step 'magic'"):  # before training
        TrainOptions(data="d", output="o", qat=True, recipe="gptq+magic").validate()
    assert TrainOptions(data="d", output="o", qat=True, recipe="gptq").int8_recipe == "gptq+qat"
    assert TrainOptions(data="d", output="o", recipe="gptq+bias-tune").int8_recipe == "gptq+bias-tune"


@pytest.mark.parametrize("recipe", ["gptq+bias-correction+range-mse", "ptq",
                                    "gptq+bias-correction+bias-tune", "gptq+bias-correction+qat"])
def test_int8_advice_names_the_applied_recipe_and_a_fix_that_runs(recipe):
    import re

    from converters.recipes import parse_recipe
    from training.report import TrainReport, int8_advice

    report = TrainReport(model="lite0", input_size=64, classes=["a", "b"], images={}, skipped=[],
                         strategy="", history=[], best={}, seconds_per_epoch={},
                         cpu_seconds_per_epoch={}, evaluated_on="test", float_accuracy=0.99,
                         quantized_accuracy=0.97, recipe=recipe)
    advice = int8_advice(report)
    assert f"recipe {recipe}" in advice and "2.0 pt" in advice
    assert ("--qat" in advice) == ("qat" not in recipe.split("+"))
    suggested = re.findall(r"--recipe ([\w+-]+)", advice)
    for name in suggested:  # a recipe it suggests is one the converter accepts, and a new one
        parse_recipe(name)
        assert name != recipe
    assert bool(suggested) == ("bias-tune" not in recipe and "qat" not in recipe)
    report.quantized_accuracy = 0.985  # within 1 pt: no warning
    assert int8_advice(report) is None


@pytest.mark.parametrize("setup, args, message", [
    ("empty", [], "no readable images"),
    ("one_class", [], "only one class"),
    ("missing", [], "no such folder"),
    ("ok", ["--val-split", "1.5"], "--val-split must be in"),
    ("ok", ["--fine-tune-blocks", "some"], "expected a number of blocks or 'all'"),
    ("ok", ["--resume"], "nothing to resume"),
    ("taken", [], "already holds a training run"),
    ("ok", ["--qat", "--recipe", "gptq+magic"], "unknown recipe step 'magic'"),
])
def test_cli_user_errors_are_one_line_with_exit_code_2(tmp_path, capsys, setup, args, message):
    data = tmp_path / "data"
    data.mkdir()
    if setup == "one_class":
        _folder(data, classes=("cat",))
    elif setup in ("ok", "taken"):
        _folder(data)
    if setup == "missing":
        data = tmp_path / "nowhere"
    out = tmp_path / "run"
    if setup == "taken":
        out.mkdir()
        (out / "config.json").write_text("{}")
    try:
        rc = main([str(data), "--output", str(out), "--quiet", *args])
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("efficientnet-train: error: ") and message in err[-1], err
    assert not (out / "checkpoints").exists()
