"""Calibration datasets: every source kind, deterministic sampling, clear errors and warnings."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from calibration import CalibrationError, load_calibration
from edge.preprocess import preprocess
from edge.samples import sample_photos
from edge.variants import preprocess_spec

SPEC = preprocess_spec("lite0")


@pytest.fixture()
def folder(tmp_path, photos):
    """The shipped photos in nested folders, plus a corrupt JPEG and a non-image file."""
    for i, p in enumerate(photos):
        sub = tmp_path / ("a" if i % 2 else "b") / "deep"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(p.path, sub / f"{p.name}{p.path[-4:]}")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_is_read_recursively_and_bad_files_are_skipped_with_one_warning(folder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_calibration(str(folder), SPEC, num_samples=9, holdout=0)
    assert data.pixels.shape == (9, 224, 224, 3) and data.pixels.dtype == np.uint8
    assert data.skipped == [str(folder / "broken.jpg")]
    skipped = [w for w in caught if "could not be decoded" in str(w.message)]
    assert len(skipped) == 1 and "broken.jpg" in str(skipped[0].message)


def test_shuffling_is_deterministic_with_a_seed(folder):
    a = load_calibration(str(folder), SPEC, num_samples=5, seed=3, holdout=0).pixels
    b = load_calibration(str(folder), SPEC, num_samples=5, seed=3, holdout=0).pixels
    c = load_calibration(str(folder), SPEC, num_samples=5, seed=4, holdout=0).pixels
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_same_preprocessing_as_the_runtime(photos):
    data = load_calibration([photos[0].path], SPEC, num_samples=1)
    np.testing.assert_array_equal(data.pixels[0], preprocess(photos[0].path, SPEC, draft=True))


def test_glob_list_array_and_tf_dataset_sources(folder, photos):
    assert len(load_calibration(str(folder / "**" / "*.png"), SPEC, num_samples=100, holdout=0)) == 5  # 5 of the 9 are PNGs
    assert len(load_calibration([p.path for p in photos[:3]], SPEC, num_samples=3)) == 3
    arr = np.random.default_rng(0).integers(0, 256, (4, 300, 400, 3), dtype=np.uint8)
    data = load_calibration(arr, SPEC, num_samples=4)
    assert data.pixels.shape == (4, 224, 224, 3)
    tf = pytest.importorskip("tensorflow")
    ds = tf.data.Dataset.from_tensor_slices((arr.astype(np.float32), np.arange(4)))
    assert load_calibration(ds, SPEC, num_samples=3).pixels.shape == (3, 224, 224, 3)


def test_holdout_images_are_never_calibrated_on(folder):
    data = load_calibration(str(folder), SPEC, num_samples=6, holdout=0.2, agreement_inputs=20)
    # 10 image files (one broken): 2 held out, the rest calibrate
    assert len(data.heldout.sources) == 2 and len(data.pixels) == 6
    assert not set(data.heldout.sources) & set(data.sources)
    assert len(data.heldout) == 20 and "held-out files" in data.heldout.description
    for h in data.heldout.pixels:
        assert not any(np.array_equal(h, p) for p in data.pixels)


def test_holding_out_never_starves_calibration_and_warnings_count_true(tmp_path, photos):
    from PIL import Image

    src = np.asarray(Image.open(photos[0].path).convert("RGB"))
    for i in range(60):  # 60 distinct usable photos (crops of one real photo)
        Image.fromarray(src[i:i + 200, 2 * i:2 * i + 200]).save(tmp_path / f"p{i:02d}.png")
    with pytest.warns(UserWarning, match=r"asked for 500 calibration images, found 48 usable .*"
                                         r"12 more held out"):
        data = load_calibration(str(tmp_path), SPEC, num_samples=500)
    assert len(data.pixels) == 48 and len(data.heldout.sources) == 12
    assert len(data.heldout) == 200  # centre crop + random crops of each held-out photo
    assert not set(data.heldout.sources) & set(data.sources)


def test_zero_usable_images_is_an_error_saying_where(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(CalibrationError, match=str(tmp_path)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_calibration(str(tmp_path), SPEC)
    with pytest.raises(CalibrationError, match="no such folder"):
        load_calibration(str(tmp_path / "missing"), SPEC)


def test_fewer_images_than_asked_warns_with_both_counts(folder):
    with pytest.warns(UserWarning, match=r"asked for 50 .* found 9"):
        load_calibration(str(folder), SPEC, num_samples=50, holdout=0)


def test_default_set_is_real_photos_deterministic_and_loud(photos):
    with pytest.warns(UserWarning, match="your own domain"):
        a = load_calibration(None, SPEC, num_samples=18)
    with pytest.warns(UserWarning):
        b = load_calibration(None, SPEC, num_samples=18, holdout=0)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.is_default and a.holdout.shape == (200, 224, 224, 3) and len(b.holdout) == 0
    # held out: photos the default set never crops, plus crops of its photos with another seed
    outside = {p.name for p in sample_photos("heldout")}
    assert len(outside) == 3 and not outside & set(a.sources)
    assert all(name in a.heldout.description for name in outside)
    # crops of real photos: neighbouring pixels are strongly correlated, unlike noise
    x = a.pixels.astype(np.float32)
    corr = np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8
