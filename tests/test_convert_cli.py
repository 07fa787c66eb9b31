"""efficientnet-convert: user errors are one line with exit code 2, and nothing half-written."""
from __future__ import annotations

import subprocess
import sys

import pytest

from converters.cli import main
from edge.metadata import read_metadata


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "converters.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_offline_imagenet_is_one_line_saying_what_to_pass_instead(tmp_path):
    out = tmp_path / "b0.tflite"
    proc = run_cli("--model", "b0", "--output", str(out), cwd=tmp_path)
    if proc.returncode == 0:
        pytest.skip("this machine is online: the ImageNet download worked")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "efficientnet-convert: error" in line]
    assert len(errors) == 1 and "could not be downloaded" in errors[0] and "--weights none" in errors[0]
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no partial output


@pytest.mark.parametrize("args,message", [
    (["--model", "lite0", "--int8", "--calibration", "/no/such/folder"], "does not exist"),
    (["--model", "lite0", "--weights", "/no/such/weights.h5"], "no such file"),
    (["--model", "lite0", "--float16", "--input-type", "uint8"], "--int8"),
    (["--model", "lite0", "--edgetpu", "--float16"], "Edge TPU"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--weights", "none", "--output", str(tmp_path / "m.tflite")]
                if "--weights" not in args else [*args, "--output", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([e for e in err if "error:" in e]) == 1 and message in err[-1]
    assert not any(tmp_path.iterdir())


def test_unknown_model_exits_2(tmp_path):
    proc = run_cli("--model", "lite9", cwd=tmp_path)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_own_classes_with_labels_file(tmp_path, capsys):
    from converters.efficientnet import create_model

    model = create_model("lite0", classes=3)
    weights = tmp_path / "finetuned.weights.h5"
    model.save_weights(str(weights))
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    out = tmp_path / "pets.tflite"
    rc = main(["--model", "lite0", "--weights", str(weights), "--labels", str(labels),
               "--output", str(out), "--android-assets", str(tmp_path / "assets")])
    assert rc == 0
    assert read_metadata(str(out)).labels == ["cat", "dog", "bird"]
    assert (tmp_path / "assets" / "model.tflite").read_bytes() == out.read_bytes()
    summary = capsys.readouterr().out
    assert "\u2713 wrote" in summary and str(out) in summary
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
    bad = tmp_path / "two.txt"
    bad.write_text("a\nb\n")
    assert main(["--model", "lite0", "--weights", str(weights), "--labels", str(bad),
                 "--output", str(tmp_path / "x.tflite")]) == 2
    assert not (tmp_path / "x.tflite").exists()
