"""efficientnet-convert: user errors are one line with exit code 2 (before the TensorFlow import
where they can be), no library log lines, and nothing half-written."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from converters.cli import main
from edge.metadata import read_metadata


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "converters.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600, env={**os.environ, **(env or {})})


def _closed_port() -> int:
    """A local TCP port nobody listens on: connections to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_env(tmp_path) -> dict[str, str]:
    """No Keras weight cache and every HTTP(S) request sent to a refusing proxy: the ImageNet
    download fails here whether or not the machine is online."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    return {"KERAS_HOME": str(tmp_path / "keras-home"), "HTTPS_PROXY": proxy, "https_proxy": proxy,
            "HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}


def test_offline_imagenet_is_one_line_saying_what_to_pass_instead(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("--model", "b0", "--output", str(out / "b0.tflite"), cwd=out, env=offline_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    # the whole of stderr: one line, no TensorFlow/absl/oneDNN log line, no traceback
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("efficientnet-convert: error: ImageNet weights for b0 could not be downloaded")
    assert "--weights none" in proc.stderr
    assert list(out.iterdir()) == []  # no partial output


_UPFRONT = r"""
import json, sys
from converters.cli import main
results = []
for args in json.loads(sys.argv[1]):
    rc = main(args)
    results.append([rc, "tensorflow" in sys.modules or "keras" in sys.modules])
print(json.dumps(results))
"""


def test_checkable_mistakes_fail_before_the_tensorflow_import(tmp_path):
    labels3 = tmp_path / "three.txt"
    labels3.write_text("cat\ndog\nbird\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    out = str(tmp_path / "m.tflite")
    cases = [
        (["--edgetpu", "--float16"], "the Edge TPU runs only full-integer models: drop --float16"),
        (["--edgetpu", "--input-type", "int8"], "the Edge TPU needs uint8 input and output"),
        (["--float16", "--input-type", "uint8"], "--input-type uint8 needs --int8"),
        (["--dynamic", "--output-type", "int8"], "--output-type int8 needs --int8"),
        (["--weights", "/no/such/weights.h5"], "--weights /no/such/weights.h5: no such file"),
        (["--int8", "--calibration", "/no/such/folder"], "calibration folder /no/such/folder does not exist"),
        (["--int8", "--calibration", str(tmp_path / "*.jpg")], "matches no files"),
        (["--calibration", str(tmp_path)], "--calibration is only used with --int8, or --dynamic --recipe"),
        (["--dynamic", "--recipe", "gptq+range-mse"], "recipe step range-mse quantises activations"),
        (["--int8", "--num-calibration", "0"], "--num-calibration must be >= 1"),
        (["--keep-float", "auto"], "--keep-float is only used with --int8"),
        (["--int8", "--keep-float", "auto", "stem_conv"], "--keep-float takes 'auto', 'none', one number"),
        (["--int8", "--recipe", "gptq+magic"], "unknown recipe step 'magic'"),
        (["--recipe", "gptq"], "--recipe is only used with --int8, or --dynamic --recipe"),
        (["--labels", str(tmp_path / "missing.txt")], f"labels file {tmp_path / 'missing.txt'}: no such file"),
        (["--labels", str(empty)], "holds no class names"),
        (["--labels", str(latin1)], "is not UTF-8 text"),
        (["--labels", str(labels3)],
         f"labels file {labels3} has 3 class names but the default ImageNet weights have 1000 classes"),
        (["--weights", "imagenet", "--labels", str(labels3)], "has 3 class names but the ImageNet weights"),
        (["--output", str(tmp_path)], "is a folder"),
    ]
    argv = [["--model", "lite0", *args, *([] if "--output" in args else ["--output", out])]
            for args, _ in cases]
    argv.append(["--model", "lite3", "--weights", "imagenet"])
    argv.append(["--model", "lite0", "--report", out, "--output", out])
    proc = subprocess.run([sys.executable, "-c", _UPFRONT, json.dumps(argv)], capture_output=True,
                          text=True, timeout=120)
    results = json.loads(proc.stdout)
    errors = proc.stderr.splitlines()
    assert len(errors) == len(argv) and all(e.startswith("efficientnet-convert: error: ") for e in errors)
    expected = [m for _, m in cases] + ["--weights efficientnet-lite3/", "must name different files"]
    for (rc, tf_imported), line, message in zip(results, errors, expected):
        assert rc == 2 and message in line, line
        assert not tf_imported, f"TensorFlow was imported before failing: {line}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "latin1.txt", "three.txt"]


@pytest.mark.parametrize("args,message", [
    (["--model", "lite0", "--int8", "--calibration", "/no/such/folder"], "does not exist"),
    (["--model", "lite0", "--edgetpu", "--float16"], "Edge TPU"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--output", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("efficientnet-convert: error: ") and message in err[0]
    assert not any(tmp_path.iterdir())


def test_usage_errors_are_one_line(tmp_path):
    for args, message in ((["--model", "lite9"], "argument --model: invalid choice: 'lite9'"),
                          (["--model", "lite0", "--num-calibration", "many"], "invalid int value"),
                          (["--model", "lite0", "--int8", "--float16"], "not allowed with argument")):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("efficientnet-convert: error: ")
        assert message in proc.stderr and proc.stderr.endswith("(see --help)\n")


def test_own_classes_with_labels_file(tmp_path, capsys):
    from converters.efficientnet import create_model
    from converters.weights.tf_checkpoint import save_checkpoint

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
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    captured = capsys.readouterr()
    assert "\u2713 wrote" in captured.out and str(out) in captured.out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    # a labels file that does not fit the weights names the file and both counts
    two = tmp_path / "two.txt"
    two.write_text("a\nb\n")
    assert main(["--model", "lite0", "--weights", str(weights), "--labels", str(two),
                 "--output", str(tmp_path / "x.tflite")]) == 2
    assert capsys.readouterr().err == (f"efficientnet-convert: error: labels file {two} has 2 class "
                                       f"names but the weights {weights} have 3 classes\n")
    # the same for an official-style checkpoint, whose head is only seen once it is loaded
    ckpt = tmp_path / "efficientnet-lite0"
    save_checkpoint(model, str(ckpt / "model.ckpt"), "efficientnet-lite0")
    assert main(["--model", "lite0", "--weights", str(ckpt), "--labels", str(two),
                 "--output", str(tmp_path / "x.tflite")]) == 2
    assert capsys.readouterr().err == (f"efficientnet-convert: error: labels file {two} has 2 class "
                                       f"names but the weights {ckpt} have 3 classes\n")
    assert not (tmp_path / "x.tflite").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_summary_names_whole_float_blocks_by_number():
    from converters.cli import kept_summary

    # the default for Lite: the stem, and blocks 1-3 whole (their 26 layers are in the report)
    kept = ["stem_conv", "block1a_dwconv", "block2b_add", "block3c_project_conv"]
    assert kept_summary(kept, 3) == "stem_conv, every layer of blocks 1–3"
    assert kept_summary(["block1a_dwconv"], 3) == "every layer of blocks 1–3"
    # named or ranked layers only: their names, at most five
    named = [f"block{i}a_dwconv" for i in range(1, 8)]
    assert kept_summary(named) == ", ".join(named[:5]) + " (+2)"


def test_the_agreement_line_names_the_cap_of_a_uint8_output():
    """The convert summary says how far strict agreement can go with a uint8 output on the same
    inputs (the float model's own probabilities rounded to 1/256), and only when that is < 100 %."""
    from types import SimpleNamespace

    from converters.cli import _agreement_line
    from converters.options import AgreementReport

    a = AgreementReport(inputs=200, description="200 inputs never calibrated on", strict=0.969,
                        with_ties=0.985, confident=1.0, confident_inputs=60, in_top5=1.0,
                        kl_mean=0.01, kl_floor=0.005, strict_cap=0.982)
    report = SimpleNamespace(agreement=a, precision="int8", agreement_top1=0.969,
                             agreement_images=200)
    lines = _agreement_line(report)
    assert "96.9% of 200 inputs" in lines[0]
    assert [ln for ln in lines if "98.2%" in ln and "uint8 output" in ln]
    for cap in (1.0, None):  # no near-tie rounded away, or a float output: nothing to say
        a.strict_cap = cap
        assert not [ln for ln in _agreement_line(report) if "uint8 output" in ln]
