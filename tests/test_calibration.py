"""Calibration datasets: every source kind, deterministic sampling, clear errors and warnings."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

from calibration import CalibrationError, load_calibration
from edge.preprocess import preprocess
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
        data = load_calibration(str(folder), SPEC, num_samples=9)
    assert data.pixels.shape == (9, 224, 224, 3) and data.pixels.dtype == np.uint8
    assert data.skipped == [str(folder / "broken.jpg")]
    skipped = [w for w in caught if "could not be decoded" in str(w.message)]
    assert len(skipped) == 1 and "broken.jpg" in str(skipped[0].message)


def test_shuffling_is_deterministic_with_a_seed(folder):
    a = load_calibration(str(folder), SPEC, num_samples=5, seed=3).pixels
    b = load_calibration(str(folder), SPEC, num_samples=5, seed=3).pixels
    c = load_calibration(str(folder), SPEC, num_samples=5, seed=4).pixels
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
    data = load_calibration(str(folder), SPEC, num_samples=6, holdout=3)
    assert len(data.pixels) == 6 and len(data.holdout) == 3
    for h in data.holdout:
        assert not any(np.array_equal(h, p) for p in data.pixels)


def test_zero_usable_images_is_an_error_saying_where(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(CalibrationError, match=str(tmp_path)), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_calibration(str(tmp_path), SPEC)
    with pytest.raises(CalibrationError, match="no such folder"):
        load_calibration(str(tmp_path / "missing"), SPEC)


def test_fewer_images_than_asked_warns_with_both_counts(folder):
    with pytest.warns(UserWarning, match=r"asked for 50 .* found 9"):
        load_calibration(str(folder), SPEC, num_samples=50)


def test_default_set_is_real_photos_deterministic_and_loud(photos):
    with pytest.warns(UserWarning, match="your own domain"):
        a = load_calibration(None, SPEC, num_samples=18, holdout=9)
    with pytest.warns(UserWarning):
        b = load_calibration(None, SPEC, num_samples=18)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.is_default and a.holdout.shape == (9, 224, 224, 3)
    # crops of real photos: neighbouring pixels are strongly correlated, unlike noise
    x = a.pixels.astype(np.float32)
    corr = np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8
