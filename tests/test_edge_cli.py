"""efficientnet-classify / efficientnet-bench: output and exit codes, as a user runs them."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _edge_models import LABELS, edge_models_fixture  # noqa: E402

from edge.cli import bench_main, classify_main  # noqa: E402
from edge.samples import sample_photo  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


def test_classify_json_and_partial_failure(models, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"nope")
    good = [sample_photo("chelsea").path, sample_photo("coffee").path]
    rc = classify_main([models.int8, good[0], str(bad), good[1], "--json", "--top-k", "2"])
    out, err = capsys.readouterr()
    assert rc == 2
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [good[0], str(bad), good[1]]  # input order
    ok = [rows[0], rows[2]]
    assert all(len(r["classes"]) == 2 and r["classes"][0]["label"] in LABELS for r in ok)
    assert all("error" not in r for r in ok) and rows[0]["delegate"] == "xnnpack"
    assert rows[1]["classes"] == [] and "broken.jpg" in rows[1]["error"]
    assert err.count("\n") == 1 and err.startswith("efficientnet-classify: error: ")
    assert "broken.jpg" in err and "Traceback" not in err


def test_classify_text_output_ok(models, capsys):
    assert classify_main([models.fp32, sample_photo("rocket").path, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("rocket.jpg") and len(out.splitlines()) == 6


@pytest.mark.parametrize("extra", [[], ["--delegate", "edgetpu"], ["--delegate", "gpu"]])
def test_classify_bad_model_or_delegate_is_one_line_exit_2(models, tmp_path, capsys, extra):
    model = str(tmp_path / "missing.tflite") if not extra else models.int8
    assert classify_main([model, sample_photo("chelsea").path] + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"efficientnet-classify: error: {model}: ")
    assert "delegate=" not in err  # the API's spelling
    if extra:
        assert "--delegate " in err


def test_gpu_hint_follows_the_caller(models):
    from edge import DelegateUnavailableError, EdgeClassifier

    with pytest.raises(DelegateUnavailableError) as e:
        EdgeClassifier(models.int8, delegate="gpu")
    assert "pass its path as delegate=" in str(e.value)  # the API keeps its own spelling
    assert "pass its path as --delegate /path/to/lib.so" in e.value.cli_message


@pytest.mark.parametrize("argv, says", [
    (["--top-k", "0"], "argument --top-k: must be at least 1, got 0"),
    (["--threads", "two"], "argument --threads: expected a whole number, got 'two'"),
    (["--format", "xml"], "argument --format: invalid choice"),
    (["--output", "out.txt"], "cannot tell the format of --output"),
])
def test_classify_usage_errors_are_one_line(models, capsys, argv, says):
    with pytest.raises(SystemExit) as e:
        classify_main([models.int8, sample_photo("chelsea").path] + argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("efficientnet-classify: error: ") and says in err
    assert err.rstrip().endswith("(see --help)")


def test_usage_error_without_arguments_is_one_line(capsys):
    for main, prog in ((classify_main, "efficientnet-classify"), (bench_main, "efficientnet-bench")):
        with pytest.raises(SystemExit) as e:
            main([])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"{prog}: error: ")
    with pytest.raises(SystemExit):
        bench_main(["model.tflite", "--runs", "0"])
    assert "--runs: must be at least 1" in capsys.readouterr().err


def test_classify_fallback_reports_what_ran(models, capsys):
    rc = classify_main([models.int8, sample_photo("chelsea").path, "--delegate", "gpu",
                        "--fallback", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["delegate"] == "xnnpack" and "warning:" in err


def test_bench_json(models, capsys):
    assert bench_main([models.int8, "--runs", "10", "--warmup", "1", "--threads", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["backend"] == "litert" and r["delegate"] == "xnnpack" and r["runs"] == 10
    assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
    assert r["throughput_ips"] > 0 and r["peak_rss_mb"] > 10


def test_console_script_subprocess_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import sys; from edge.cli import classify_main;"
                        "sys.exit(classify_main())", str(tmp_path / "none.tflite"), "x.jpg"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "no such model file" in r.stderr


def test_library_warnings_print_once_on_one_line(models, tmp_path, monkeypatch, capsys):
    from PIL import Image

    photo = tmp_path / "photo.png"
    Image.new("RGB", (300, 200), (90, 120, 200)).save(photo)  # 60,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)  # warns above, fails above 80,000
    assert classify_main([models.int8, str(photo), str(photo), str(photo)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("efficientnet-classify: warning: Image size")
