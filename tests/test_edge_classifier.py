"""EdgeClassifier on real photos with small real models, checked against a raw interpreter."""
import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from _edge_models import LABELS, SIZE, edge_models_fixture  # noqa: E402

from edge import (ClassifierClosedError, EdgeClassifier, ImageDecodeError,  # noqa: E402
                  ModelLoadError)
from edge.samples import sample_photo, sample_photos  # noqa: E402

CROP = SIZE / (SIZE + 32)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


def reference_pixels(img: Image.Image) -> np.ndarray:
    """Independent centre crop + bicubic resize (tensorflow/tpu arithmetic), straight PIL."""
    w, h = img.size
    c = int(CROP * min(w, h))
    left, top = (w - c + 1) // 2, (h - c + 1) // 2
    return np.asarray(img.resize((SIZE, SIZE), Image.BICUBIC, box=(left, top, left + c, top + c)))


def raw_scores(model_path, x: np.ndarray) -> np.ndarray:
    """What the model outputs for input tensor ``x`` through a bare ai_edge_litert interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model_path, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
    it.invoke()
    y = it.get_tensor(out["index"])[0].astype(np.float64)
    scale, zp = out["quantization"]
    return scale * (y - zp) if scale else y


def photo_rgb(name="chelsea") -> Image.Image:
    return Image.open(sample_photo(name).path).convert("RGB")


def test_predict_matches_raw_interpreter_on_every_photo(models):
    with EdgeClassifier(models.int8, num_threads=2, draft=False) as clf:
        assert clf.input_size == SIZE and clf.labels == LABELS and clf.backend == "litert"
        for p in sample_photos():
            ref = raw_scores(models.int8, reference_pixels(Image.open(p.path).convert("RGB")))
            cats = clf.predict(p.path, top_k=3)
            assert [c.score for c in cats] == sorted((c.score for c in cats), reverse=True)
            assert cats[0].index == int(np.argmax(ref)) and cats[0].label == LABELS[cats[0].index]
            assert np.allclose(clf.scores(p.path), ref, atol=1e-6)


def test_fp32_and_int8_agree(models):
    with EdgeClassifier(models.fp32) as f, EdgeClassifier(models.int8) as q:
        photos = sample_photos()
        agree = sum(f.predict(p.path)[0].index == q.predict(p.path)[0].index for p in photos)
        assert agree >= len(photos) - 1


def test_every_input_kind_gives_the_same_answer(models):
    path = sample_photo("chelsea").path
    rgb = photo_rgb()
    with EdgeClassifier(models.fp32) as clf:
        want = clf.scores(path)
        for src in (open(path, "rb").read(), rgb, np.asarray(rgb),
                    np.asarray(rgb).astype(np.float32)):
            assert np.allclose(clf.scores(src), want, atol=1e-5), type(src)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_image_modes(models, mode):
    rgb = photo_rgb()
    if mode == "I;16":
        gray = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
        img = Image.fromarray(gray)
        assert img.mode.startswith("I;16")
        same_as = rgb.convert("L").convert("RGB")
    elif mode == "CMYK":
        img, same_as = rgb.convert("CMYK"), rgb.convert("CMYK").convert("RGB")
    else:
        img = rgb.convert(mode)
        same_as = img.convert("RGBA").convert("RGB") if mode == "P" else \
            img.convert("L").convert("RGB") if mode in ("L", "LA") else rgb
    with EdgeClassifier(models.fp32) as clf:
        got = clf.scores(img)
        ref = raw_scores(models.fp32, reference_pixels(same_as).astype(np.float32))
        assert np.allclose(got, ref, atol=1e-5)
        buf = io.BytesIO()
        img.save(buf, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
        assert np.allclose(clf.scores(buf.getvalue()), got, atol=1e-5)


def test_exif_orientation_is_applied(models):
    rgb = photo_rgb()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display = rotate 90° clockwise
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    stored = Image.open(io.BytesIO(buf.getvalue()))
    stored.load()
    upright = np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    sideways = np.asarray(stored.convert("RGB"))
    with EdgeClassifier(models.fp32) as clf:
        got = clf.scores(buf.getvalue())
        assert np.allclose(got, clf.scores(upright), atol=1e-5)
        assert not np.allclose(got, clf.scores(sideways), atol=1e-3)


def test_presized_uint8_array_is_fed_unchanged(models):
    x = np.asarray(photo_rgb().resize((SIZE, SIZE)))
    with EdgeClassifier(models.int8) as clf:
        assert np.array_equal(clf.scores(x), raw_scores(models.int8, x).astype(np.float32))


def test_model_without_metadata(models):
    x = reference_pixels(photo_rgb()).astype(np.float64)
    with EdgeClassifier(models.bare_logits, input_mean=127.0, input_std=128.0) as clf:
        assert clf.labels is None and clf.metadata is None and clf.input_size == SIZE
        logits = raw_scores(models.bare_logits, ((x - 127.0) / 128.0).astype(np.float32))
        want = np.exp(logits - logits.max())
        want /= want.sum()
        cats = clf.predict(sample_photo("chelsea").path, top_k=10)
        assert all(c.label is None for c in cats)
        assert np.isclose(sum(c.score for c in cats), 1.0, atol=1e-4)  # logits were softmaxed
        assert np.allclose([c.score for c in sorted(cats, key=lambda c: c.index)], want, atol=1e-5)
    # documented default for float inputs without metadata: raw 0–255 pixels
    with EdgeClassifier(models.bare_logits, labels=LABELS) as clf:
        logits = raw_scores(models.bare_logits, x.astype(np.float32))
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = int(np.argmax(logits))
        got = clf.predict(x, top_k=1)[0]
        assert (got.index, got.label) == (best, LABELS[best])
        assert np.isclose(got.score, probs[best], atol=1e-5)  # softmax of the raw-pixel logits
        # and not what the (pixel-127)/128 normalisation above would give
        assert not np.allclose(clf.scores(x), want, atol=1e-3)


def test_top_k_threshold_and_batch(models):
    paths = [p.path for p in sample_photos()[:3]]
    with EdgeClassifier(models.int8, top_k=2, score_threshold=0.2) as clf:
        batch = clf.predict_batch(paths)
        assert batch == [clf.predict(p) for p in paths]
        assert all(len(b) <= 2 and all(c.score >= 0.2 for c in b) for b in batch)


def test_eight_threads_match_one_thread(models):
    photos = [p.path for p in sample_photos()] * 3
    with EdgeClassifier(models.int8, num_threads=1) as clf:
        want = [clf.scores(p) for p in photos]
        got = [None] * len(photos)

        def work(start):
            for i in range(start, len(photos), 8):
                got[i] = clf.scores(photos[i])

        threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_close_is_idempotent_and_use_after_close_raises(models):
    clf = EdgeClassifier(models.int8)
    with clf:
        clf.predict(sample_photo("coffee").path)
    clf.close()
    with pytest.raises(ClassifierClosedError):
        clf.predict(sample_photo("coffee").path)


def test_bad_inputs_raise_typed_errors(models, tmp_path):
    with EdgeClassifier(models.int8) as clf:
        with pytest.raises(FileNotFoundError):
            clf.predict(tmp_path / "nope.jpg")
        (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        with pytest.raises(ImageDecodeError):
            clf.predict(tmp_path / "bad.jpg")
    (tmp_path / "bad.tflite").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelLoadError):
        EdgeClassifier(tmp_path / "bad.tflite")
    with pytest.raises(FileNotFoundError):
        EdgeClassifier(tmp_path / "missing.tflite")


def test_draft_decoding_keeps_top1_on_large_jpegs(models, tmp_path):
    photos = sample_photos()
    agree = 0
    with EdgeClassifier(models.fp32, draft=True) as fast, EdgeClassifier(models.fp32, draft=False) as full:
        for p in photos:
            big = Image.open(p.path).convert("RGB")
            big = big.resize((big.width * 5, big.height * 5), Image.BICUBIC)
            path = tmp_path / f"{p.name}.jpg"
            big.save(path, quality=90)
            agree += fast.predict(path)[0].index == full.predict(path)[0].index
    assert agree / len(photos) >= 0.99


def test_runtime_never_imports_tensorflow(models):
    code = (
        "import sys, edge\n"
        "from edge.samples import sample_photo\n"
        f"clf = edge.EdgeClassifier({models.int8!r})\n"
        "print(clf.predict(sample_photo('chelsea').path)[0].label)\n"
        "bad = [m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in LABELS
