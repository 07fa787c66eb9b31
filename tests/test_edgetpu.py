"""Edge TPU readiness: the op check flags ops the Edge TPU cannot run, and the compiler step says
what happened once."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from converters.cli import summary
from converters.edgetpu import EDGETPU_OPS, INSTALL_HINT, check_ops, compile_bytes


@pytest.fixture(scope="module")
def leaky_int8(tmp_path_factory):
    """A real full-int8 Edge TPU-mode conversion of a small B0-named model with a LeakyReLU,
    an op outside the Edge TPU's supported set."""
    import keras

    from converters.tflite import convert

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inp, out, name="efficientnet-b0")
    pixels = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    return convert(model, "int8", calibration=pixels, edgetpu=True, labels=["a", "b", "c"],
                   num_samples=12, holdout=0)


def test_op_check_flags_an_op_the_edge_tpu_cannot_run(leaky_int8):
    data, report = leaky_int8
    assert "LEAKY_RELU" not in EDGETPU_OPS
    assert report.ops.get("LEAKY_RELU") == 1 and "CONV_2D" in report.ops
    assert report.edgetpu.unsupported_ops == ["LEAKY_RELU"]
    assert "host CPU: LEAKY_RELU" in report.edgetpu.message
    assert check_ops({"CONV_2D": 2, "EXP": 1, "ARG_MAX": 1}) == ["ARG_MAX", "EXP"]
    assert check_ops({"CONV_2D": 2, "DEPTHWISE_CONV_2D": 1, "SOFTMAX": 1}) == []


def test_missing_compiler_is_said_once(leaky_int8, tmp_path, monkeypatch):
    data, report = leaky_int8
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    compiled, result = compile_bytes(data, str(tmp_path / "m.tflite"))
    assert compiled is None and result.compiler is None and not result.compiled
    assert result.message == INSTALL_HINT.format(path=str(tmp_path / "m.tflite"))
    text = summary(report, [str(tmp_path / "m.tflite")], [result.message])
    assert text.count("edgetpu_compiler not found") == 1
    assert "\u2717 Edge TPU ops: these run on the host CPU: LEAKY_RELU" in text
    assert list(tmp_path.iterdir()) == []


def _compiler(folder, script: str) -> None:
    folder.mkdir()
    path = folder / "edgetpu_compiler"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_compiler_runs_in_a_temp_folder_and_hands_back_its_output(leaky_int8, tmp_path, monkeypatch):
    data, _ = leaky_int8
    # Stands in for Coral's compiler (not installable here): same arguments, same output name.
    _compiler(tmp_path / "bin", 'out="$3"; src="$4"; n=$(basename "$src" .tflite); '
                                'cat "$src" > "$out/${n}_edgetpu.tflite"; echo "Compiled OK"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    target = tmp_path / "out" / "m.tflite"
    compiled, result = compile_bytes(data, str(target))
    assert compiled == data and result.compiled and result.message == "Compiled OK"
    assert result.compiled_path == str(tmp_path / "out" / "m_edgetpu.tflite")
    assert not (tmp_path / "out").exists()  # nothing written: the caller writes both files


def test_compiler_failure_is_reported_not_raised(leaky_int8, tmp_path, monkeypatch):
    data, _ = leaky_int8
    _compiler(tmp_path / "bin", 'echo "ERROR: Unsupported op LEAKY_RELU" >&2; exit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    compiled, result = compile_bytes(data, str(tmp_path / "m.tflite"))
    assert compiled is None and not result.compiled
    assert result.message == "edgetpu_compiler failed: ERROR: Unsupported op LEAKY_RELU"
