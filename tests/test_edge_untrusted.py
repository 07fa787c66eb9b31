"""Untrusted models and images: every failure class gives a typed error that says what is wrong.

A sample of each class of benchmarks/fuzz_inputs.py runs here in-process on the tiny test
model; the 5,000 + 5,000 soak with worker processes runs under ``-m slow``.
"""
import gc
import io
import os
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
import fuzz_inputs  # noqa: E402
from _edge_models import LABELS, edge_models_fixture  # noqa: E402

from edge import EdgeClassifier, ImageDecodeError, ModelLoadError, read_metadata  # noqa: E402
from edge._schema import model_schema  # noqa: E402
from edge.metadata import MAX_LABELS, MAX_ZIP_MEMBERS, SPEC_FILE, MetadataError  # noqa: E402
from edge.samples import sample_photo  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def runner(models, tmp_path_factory):
    return fuzz_inputs.Runner(models.int8, seed=7, scratch=str(tmp_path_factory.mktemp("fuzz")))


def _flatbuffer_part(model: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        return model[:min(i.header_offset for i in zf.infolist())]


def _with_zip(model: bytes, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO(_flatbuffer_part(model))
    out.seek(0, 2)
    with zipfile.ZipFile(out, "a", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _load_error(data: bytes) -> str:
    with pytest.raises(ModelLoadError) as e:
        EdgeClassifier(data)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


# -- every fuzz class, sampled -------------------------------------------------------------------

@pytest.mark.parametrize("kind", fuzz_inputs.MODEL_KINDS)
def test_model_mutants_are_ok_or_typed(runner, kind):
    index = fuzz_inputs.MODEL_KINDS.index(kind)
    n = len(fuzz_inputs.MODEL_KINDS)
    outcomes = [runner.run("model", index + n * k) for k in range(6)]
    assert all(o[1] in ("ok", "typed") for o in outcomes), outcomes
    if kind in ("flip_header", "empty", "text"):
        assert all(o[1] == "typed" for o in outcomes), outcomes


@pytest.mark.parametrize("kind", fuzz_inputs.image_kinds())
def test_image_cases_are_ok_or_typed(runner, kind):
    kinds = fuzz_inputs.image_kinds()
    outcomes = [runner.run("image", kinds.index(kind) + len(kinds) * k) for k in range(3)]
    assert all(o[1] in ("ok", "typed") for o in outcomes), outcomes
    if kind.startswith("truncate") or kind in ("zero_bytes", "text", "directory", "bomb"):
        assert all(o[1] == "typed" for o in outcomes), outcomes
    if kind in ("animated", "1x1", "20000x2", "CMYK", "LA", "I;16", "F"):
        assert all(o[1] == "ok" for o in outcomes), outcomes


# -- models: what the message says --------------------------------------------------------------

def test_broken_flatbuffers_say_what_is_wrong(models):
    base = open(models.int8, "rb").read()
    assert "TFL3" in _load_error(b"")
    assert "TFL3" in _load_error(b"GIF89a" + base[6:])
    assert "outside" in _load_error(base[:4] + b"TFL3" + base[8:2000])  # truncated tables
    huge = bytearray(base)
    huge[0:4] = (0xFFFF0000).to_bytes(4, "little")  # root offset far past the end
    assert "outside the" in _load_error(bytes(huge))


def _rewritten(path: str, edit) -> bytes:
    """The model with ``edit(ModelT)`` applied, its metadata buffer kept (ZIP dropped)."""
    import flatbuffers

    fb = model_schema()
    buf = open(path, "rb").read()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(buf, 0))
    edit(m, fb)
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("edit, says", [
    (lambda m, fb: setattr(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]], "shape",
                           np.array([1, 224, 200, 3], np.int32)), "1xSxSx3"),
    (lambda m, fb: setattr(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]], "type",
                           fb.TensorType.INT32), "is int32"),
    (lambda m, fb: setattr(m.subgraphs[0], "inputs", np.array([], np.int32)), "one image input"),
    (lambda m, fb: setattr(m.subgraphs[0].tensors[m.subgraphs[0].outputs[0]], "shape",
                           np.array([1, 5, 2], np.int32)), "1xN class-score output"),
    (lambda m, fb: setattr(m.subgraphs[0].tensors[0], "buffer", 10_000), "buffer index 10000"),
    (lambda m, fb: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 99), "opcode index 99"),
    (lambda m, fb: setattr(m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].quantization,
                           "scale", np.array([-1.0], np.float32)), "positive finite scale"),
    # an int8 activation with zero points but no scales: LiteRT's int8 kernels abort on it
    (lambda m, fb: setattr(m.subgraphs[0].tensors[m.subgraphs[0].operators[0].outputs[0]].quantization,
                           "scale", np.array([], np.float32)), "0 scales for 1 zero points"),
])
def test_wrong_tensors_say_what_is_wrong(models, edit, says):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # metadata without its ZIP
        assert says in _load_error(_rewritten(models.int8, edit))


# -- metadata: in memory, with caps --------------------------------------------------------------

def test_metadata_caps_and_corrupt_associated_files(models):
    base = open(models.int8, "rb").read()
    spec = zipfile.ZipFile(io.BytesIO(base)).read(SPEC_FILE)
    labels = "\n".join(LABELS).encode()
    cases = {
        "members": _with_zip(base, {f"f{i}": b"x" for i in range(MAX_ZIP_MEMBERS + 1)}),
        "labels (limit": _with_zip(base, {"labels.txt": "\n".join(
            f"l{i}" for i in range(MAX_LABELS + 1)).encode(), SPEC_FILE: spec}),
        "expands": _with_zip(base, {"labels.txt": labels + b" " * 5_000_000, SPEC_FILE: spec},
                             zipfile.ZIP_DEFLATED),
        "not UTF-8": _with_zip(base, {"labels.txt": b"\xff\xfe" + labels, SPEC_FILE: spec}),
        "does not carry": _with_zip(base, {SPEC_FILE: spec}),
        "malformed efficientnet_edge.json": _with_zip(base, {"labels.txt": labels,
                                                             SPEC_FILE: b"[[[[" * 10}),
        "crop_fraction": _with_zip(base, {"labels.txt": labels, SPEC_FILE: spec.replace(
            b'"crop_fraction": 0.875', b'"crop_fraction": 0.0')}),
        "8 labels for 10": _with_zip(base, {"labels.txt": labels.rsplit(b"\n", 2)[0],
                                            SPEC_FILE: spec}),
    }
    for says, data in cases.items():
        assert says in _load_error(data), says
        if says != "8 labels for 10":
            with pytest.raises(MetadataError, match=says.split(" (")[0]):
                read_metadata(data)
    assert "not a readable associated-files ZIP" in _load_error(base[:-100])  # cut download
    crc = bytearray(base)
    crc[_flatbuffer_part(base).__len__() + 40] ^= 0xFF  # inside the first member's data
    assert "ZIP" in _load_error(bytes(crc)) or "labels" in _load_error(bytes(crc))


def test_metadata_is_never_extracted_to_disk(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    before = set(os.listdir(tmp_path))
    info = read_metadata(open(models.int8, "rb").read())
    assert info.labels == LABELS and set(os.listdir(tmp_path)) == before


def test_model_without_its_zip_warns_and_has_no_labels(models):
    stripped = _rewritten(models.int8, lambda m, fb: None)
    with pytest.warns(RuntimeWarning, match="no associated files"):
        clf = EdgeClassifier(stripped)
    with clf:
        assert clf.labels is None and clf.predict(sample_photo("chelsea").path)[0].label is None


def test_labels_mismatch_with_user_labels_is_a_value_error(models):
    with pytest.raises(ValueError, match="3 labels for 10 classes"):
        EdgeClassifier(models.int8, labels=["a", "b", "c"])


# -- images ---------------------------------------------------------------------------------------

def test_multi_frame_gif_closes_its_file(models, tmp_path):
    path = tmp_path / "anim.gif"
    path.write_bytes(fuzz_inputs.special_image("animated", fuzz_inputs.random.Random(0)))
    with EdgeClassifier(models.int8) as clf, warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for _ in range(3):
            clf.predict(path)
        gc.collect()  # an unclosed file would warn here
    fds = os.listdir(f"/proc/{os.getpid()}/fd") if os.path.isdir("/proc/self/fd") else []
    assert not any(os.path.realpath(f"/proc/{os.getpid()}/fd/{fd}") == str(path) for fd in fds)


def test_image_errors_name_the_file(models, tmp_path):
    with EdgeClassifier(models.int8) as clf:
        with pytest.raises(ImageDecodeError, match="a directory"):
            clf.predict(tmp_path)
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(fuzz_inputs.bomb_png())
        with pytest.raises(ImageDecodeError, match="bomb.png.*decompression bomb"):
            clf.predict(bomb)
        cut = tmp_path / "cut.jpg"
        Image.open(sample_photo("chelsea").path).convert("RGB").save(cut)
        cut.write_bytes(cut.read_bytes()[:3000])
        with pytest.raises(ImageDecodeError, match="cut.jpg.*truncated"):
            clf.predict(cut)


@pytest.mark.slow
def test_soak_5000_models_and_5000_images(tmp_path):
    model = os.path.join(HERE, "..", "out", "lite0_int8.tflite")
    if not os.path.isfile(model):
        pytest.skip("run `make demo` first (out/lite0_int8.tflite)")
    r = subprocess.run([sys.executable, os.path.join(HERE, "..", "benchmarks", "fuzz_inputs.py"),
                        "--model", model, "--models", "5000", "--images", "5000"],
                       capture_output=True, text=True, timeout=3 * 3600)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "0 untyped/crash/hang" in r.stdout
