"""Delegates: the real failure paths here (no Edge TPU, no GPU) and a fake external delegate.

The fake delegate (tests/fake_delegate/fake_delegate.c) is compiled with gcc at test time. By
default it CLAIMS NO OPS: it loads, records its options and is applied, but every node still
runs on the CPU, so `.delegate` must name the CPU path and warn. With ``claim=last`` it takes
the last node (its kernel only logs "invoke"), so `.delegate` must name it.
"""
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _edge_models import edge_models_fixture  # noqa: E402

from edge import DelegateUnavailableError, EdgeClassifier  # noqa: E402
from edge._schema import model_schema  # noqa: E402
from edge.delegates import EDGETPU_LIBRARY, is_edgetpu_model  # noqa: E402
from edge.accelerated import CompiledRunner  # noqa: E402
from edge.model import load_model  # noqa: E402
from edge.samples import sample_photo, sample_photos  # noqa: E402

fb = model_schema()

import flatbuffers  # noqa: E402

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def fake_delegate(tmp_path_factory):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) to build the fake delegate")
    out = tmp_path_factory.mktemp("fake_delegate") / "libfake_delegate.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(out),
                    os.path.join(HERE, "fake_delegate", "fake_delegate.c")], check=True)
    return str(out)


@pytest.fixture(scope="session")
def edgetpu_like(models, tmp_path_factory):
    """The int8 model with its first operator code renamed to the Edge TPU custom op: what
    edgetpu_compiler output looks like to the runtime (it cannot run without libedgetpu)."""
    buf = open(models.int8, "rb").read()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(buf, 0))
    m.operatorCodes[0].builtinCode = fb.BuiltinOperator.CUSTOM
    m.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    m.operatorCodes[0].customCode = "edgetpu-custom-op"
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), b"TFL3")
    path = tmp_path_factory.mktemp("edgetpu") / "tiny_edgetpu.tflite"
    path.write_bytes(bytes(b.Output()))
    return str(path)


def test_edgetpu_model_detection(models, edgetpu_like):
    assert is_edgetpu_model(open(edgetpu_like, "rb").read())
    assert not is_edgetpu_model(open(models.int8, "rb").read())


@pytest.mark.parametrize("fallback", [False, True])
def test_auto_on_edgetpu_model_without_runtime_fails_clearly(edgetpu_like, fallback):
    # no fallback possible: an Edge TPU-compiled model cannot run on the CPU
    with pytest.raises(DelegateUnavailableError) as e, \
            pytest.warns(RuntimeWarning, match="no associated files"):  # re-packed: ZIP dropped
        EdgeClassifier(edgetpu_like, fallback=fallback)
    assert EDGETPU_LIBRARY["Linux"] in str(e.value) and "Edge TPU runtime" in str(e.value)


def test_edgetpu_on_plain_model_says_it_needs_the_compiler(models):
    with pytest.raises(DelegateUnavailableError, match="edgetpu_compiler"):
        EdgeClassifier(models.int8, delegate="edgetpu")
    with pytest.raises(ValueError, match="usb"):
        EdgeClassifier(models.int8, delegate="edgetpu:bluetooth")


def test_gpu_unavailable_is_explicit_then_falls_back_honestly(models):
    """No GPU here: 'gpu' tries the GPU delegate library, then LiteRT's own GPU accelerator
    (CompiledModel API), and says why each failed. On a machine where LiteRT finds a GPU the
    accelerator must really run: same top-1 as XNNPACK on every shipped photo."""
    try:
        clf = EdgeClassifier(models.int8, delegate="gpu")
    except DelegateUnavailableError as e:
        msg = str(e)
        assert "libtensorflowlite_gpu_delegate.so" in msg and "cannot open shared object" in msg
        assert "LiteRT's GPU accelerator: " in msg and "\n" not in msg
        assert "INTERNAL" in msg or "cannot compile or run this model" in msg  # LiteRT's reason
    else:
        with clf, EdgeClassifier(models.int8) as cpu:
            assert clf.delegate == "gpu" and clf.fallback_reason is None
            for p in sample_photos():
                assert clf.predict(p.path)[0].index == cpu.predict(p.path)[0].index
        return
    with pytest.warns(RuntimeWarning, match="falling back to XNNPACK"):
        clf = EdgeClassifier(models.int8, delegate="gpu", fallback=True)
    with clf:
        assert clf.delegate == "xnnpack" and "gpu" in clf.fallback_reason
        assert clf.predict(sample_photo("chelsea").path)


def test_cpu_turns_xnnpack_off_and_gives_the_same_top1(models):
    path = sample_photo("coffee").path
    with EdgeClassifier(models.fp32, delegate="cpu") as cpu, EdgeClassifier(models.fp32) as xnn:
        assert cpu.delegate == "cpu" and cpu.delegated_ops == 0
        assert xnn.delegate == "xnnpack" and xnn.delegated_ops > 0
        assert cpu.predict(path)[0].index == xnn.predict(path)[0].index


def test_unknown_delegate_name(models):
    with pytest.raises(ValueError, match="xnnpack"):
        EdgeClassifier(models.int8, delegate="tpu-please")


def test_delegate_that_takes_no_ops_is_reported_as_the_cpu_path(models, fake_delegate, tmp_path):
    log = tmp_path / "fake.log"
    path = sample_photo("chelsea").path
    with EdgeClassifier(models.int8) as plain:
        want, xnnpack_nodes = plain.scores(path), plain.delegated_ops
    with pytest.warns(RuntimeWarning, match="took none of the model's operators"):
        clf = EdgeClassifier(models.int8, delegate=fake_delegate,
                             delegate_options={"log_path": str(log), "device": "usb:0"})
    with clf:
        assert clf.delegate == "xnnpack" and clf.delegated_ops == xnnpack_nodes
        assert "libfake_delegate.so" in clf.fallback_reason
        assert (clf.scores(path) == want).all()  # the same CPU kernels ran
    lines = log.read_text().split()
    assert f"log_path={log}" in lines and "device=usb:0" in lines  # options reached the library
    assert lines.index("created") < lines.index("prepare") and "invoke" not in lines


def test_delegate_that_takes_a_node_is_reported_and_runs(models, fake_delegate, tmp_path):
    log = tmp_path / "claim.log"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "took none" warning
        clf = EdgeClassifier(models.int8, delegate=fake_delegate,
                             delegate_options={"log_path": str(log), "claim": "last"})
    with clf:
        assert clf.delegate == "external:libfake_delegate.so" and clf.delegated_ops == 1
        assert clf.fallback_reason is None
        clf.predict(sample_photo("coffee").path)
        clf.predict(sample_photo("rocket").path)
    assert log.read_text().split().count("invoke") == 2  # the delegate's kernel ran each time


def test_fake_delegate_failure_path_and_fallback(models, fake_delegate):
    with pytest.raises(DelegateUnavailableError, match="asked to fail"):
        EdgeClassifier(models.int8, delegate=fake_delegate, delegate_options={"fail": "1"})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        clf = EdgeClassifier(models.int8, delegate=fake_delegate, delegate_options={"fail": "1"},
                             fallback=True)
    assert any("asked to fail" in str(x.message) for x in w)
    with clf:
        assert clf.delegate == "xnnpack"


def test_preloaded_delegate_object_wins(models, fake_delegate, tmp_path):
    from ai_edge_litert.interpreter import load_delegate

    log = tmp_path / "pre.log"
    d = load_delegate(fake_delegate, {"log_path": str(log), "claim": "last"})
    with EdgeClassifier(models.int8, delegate=d) as clf:
        assert clf.delegate == "custom:Delegate" and clf.delegated_ops == 1
        clf.predict(sample_photo("coffee").path)
    assert "invoke" in log.read_text().split()
    idle = load_delegate(fake_delegate, {})
    with pytest.warns(RuntimeWarning, match="custom:Delegate .*took none"):
        clf = EdgeClassifier(models.int8, delegate=idle)
    with clf:
        assert clf.delegate == "xnnpack"


@pytest.mark.parametrize("kind", ["int8", "fp32"])
def test_compiled_model_runner_gives_the_interpreters_outputs(models, kind):
    """The CompiledModel wrapper behind LiteRT's GPU accelerator, driven on LiteRT's CPU
    accelerator (the one this machine has): byte-identical outputs to the Interpreter's on the
    shipped photos, through the Interpreter calls EdgeClassifier makes."""
    pytest.importorskip("ai_edge_litert.compiled_model", reason="ai-edge-litert < 2")
    from ai_edge_litert.interpreter import Interpreter

    f = load_model(getattr(models, kind))
    runner = CompiledRunner(f.data, "cpu", f.input, f.output)
    interp = Interpreter(model_content=f.data, num_threads=1)
    interp.allocate_tensors()
    want_in, want_out = interp.get_input_details()[0], interp.get_output_details()[0]
    got_in, got_out = runner.get_input_details()[0], runner.get_output_details()[0]
    for key in ("dtype", "quantization"):
        assert got_in[key] == want_in[key] and got_out[key] == want_out[key]
    assert list(got_in["shape"]) == list(want_in["shape"])
    with EdgeClassifier(getattr(models, kind)) as clf:
        for p in sample_photos():
            x = clf._input(p.path)[None]  # the classifier's own input tensor for this photo
            interp.set_tensor(want_in["index"], x)
            interp.invoke()
            runner.set_tensor(got_in["index"], x)
            runner.invoke()
            want = interp.get_tensor(want_out["index"])
            got = runner.get_tensor(got_out["index"])
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="input must be"):
        runner.set_tensor(0, np.zeros((1, 8, 8, 3), f.input.dtype))
    runner.close()
    runner.close()  # idempotent


@pytest.mark.parametrize("hide", [False, True])
def test_litert_exit_logs_are_kept_out_of_a_cli_run(models, hide):
    """LiteRT keeps environments of a compiled model until the process exits and logs a line as
    it frees each ("DestroyAccelerator"). The console entry points hide those after their last
    line (hide_native_exit_logs); without it they reach stderr, which this test also shows."""
    pytest.importorskip("ai_edge_litert.compiled_model", reason="ai-edge-litert < 2")
    code = ("import sys\n"
            "from edge.accelerated import CompiledRunner, compiled_here\n"
            "from edge.cliutil import hide_native_exit_logs, quiet_native_logs\n"
            "from edge.model import load_model\n"
            "f = load_model(sys.argv[1])\n"
            "with quiet_native_logs():\n"
            "    CompiledRunner(f.data, 'cpu', f.input, f.output).close()\n"
            "assert compiled_here()\n"
            "print('last line', file=sys.stderr, flush=True)\n"
            + ("hide_native_exit_logs()\n" if hide else ""))
    r = subprocess.run([sys.executable, "-c", code, models.int8], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("last line\n")
    assert ("DestroyAccelerator" in r.stderr) is not hide
