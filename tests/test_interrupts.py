"""Ctrl-C, SIGTERM and SIGKILL against real efficientnet-convert runs, at every stage: the run
stops within seconds with exit 130 and one "interrupted" line, temp files are gone, and files
from an earlier run are untouched.

Stages are found from the outside: ``--verbose`` stage lines (model build), the progress bar
(calibration), an import hook announcing the converter's native call (conversion), and the
EFFICIENTNET_EDGE_TEST_WRITE_DELAY hook of edge.cliutil (writing).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest


#: Generous bound for "stops within a few seconds"; the work left at each signal takes far longer.
STOP_WITHIN_S = 10.0
EARLIER = b"output of an earlier run"


class Run:
    """``efficientnet-convert`` in a child process, with its stderr collected as it arrives."""

    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None, module="converters.cli"):
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        cmd = [sys.executable, "-m", module, *args] if module else [sys.executable, *args]
        self.proc = subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(self.tmpdir), **(env or {})})
        self.err = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.proc.stderr.fileno(), 65536):
            self.err += chunk

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    def wait_for(self, what, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                pytest.fail(f"exited {self.proc.returncode} before the stage was reached:\n{self.stderr}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"stage not reached in {timeout:.0f} s:\n{self.stderr}")
            time.sleep(0.05)

    def stop(self, sig: int) -> tuple[int, float, str]:
        """Send ``sig``; (exit code, seconds until exit, stdout)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"still running 60 s after signal {sig}:\n{self.stderr}")
        took = time.monotonic() - t0
        self._reader.join(10)
        return self.proc.returncode, took, self.proc.stdout.read().decode()


def _earlier_outputs(folder: Path, *names: str) -> dict[Path, bytes]:
    files = {}
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(EARLIER + name.encode())
        files[path] = path.read_bytes()
    return files


def _assert_stopped_cleanly(run: Run, rc: int, took: float, out: str, earlier: dict[Path, bytes]):
    lines = run.stderr.replace("\r", "\n").splitlines()
    assert rc == 130, run.stderr
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop"
    assert lines[-1] == "efficientnet-convert: interrupted"
    assert sum("interrupted" in line for line in lines) == 1
    assert "Traceback" not in run.stderr and "wrote" not in out
    for path, data in earlier.items():
        assert path.read_bytes() == data, f"{path.name} was touched"
    folder = next(iter(earlier)).parent
    leftovers = [p.name for p in folder.rglob("*") if p.is_file() and p not in earlier]
    assert leftovers == [], f"left behind: {leftovers}"
    assert list(run.tmpdir.iterdir()) == [], f"temp left: {list(run.tmpdir.rglob('*'))}"


def test_ctrl_c_during_model_build(tmp_path):
    out = tmp_path / "out"
    earlier = _earlier_outputs(out, "m.tflite")
    run = Run(tmp_path, "--model", "lite0", "--verbose", "--output", str(out / "m.tflite"))
    run.wait_for(lambda: "efficientnet-convert: building lite0" in run.stderr)
    time.sleep(1.5)  # inside the Keras import / model build / weight load
    rc, took, stdout = run.stop(signal.SIGINT)
    assert "converting to" not in run.stderr  # it was stopped while building
    _assert_stopped_cleanly(run, rc, took, stdout, earlier)


def test_sigterm_during_calibration(tmp_path, photos):
    images = tmp_path / "calib"
    images.mkdir()
    for i in range(400):
        src = Path(photos[i % len(photos)].path)
        (images / f"img{i:03d}{src.suffix}").symlink_to(src)
    out = tmp_path / "out"
    earlier = _earlier_outputs(out, "m.tflite")
    run = Run(tmp_path, "--model", "lite0", "--int8", "--calibration", str(images),
              "--num-calibration", "350", "--output", str(out / "m.tflite"))
    run.wait_for(lambda: "calibrating" in run.stderr)
    rc, took, stdout = run.stop(signal.SIGTERM)
    # what reached the terminal: our progress bar only, no TensorFlow/absl/LiteRT lines
    text = run.stderr.replace("\r", "\n")
    assert not [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(
        ("calibrating", "efficientnet-convert: "))], text
    _assert_stopped_cleanly(run, rc, took, stdout, earlier)


# efficientnet-convert with the TFLite converter's one native call announced on stderr when it
# starts (an import hook in the process that runs it: the CLI's forked worker imports TensorFlow).
_ANNOUNCE_CONVERTER = """
import importlib.abc, importlib.machinery, sys

class Announce(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow.compiler.mlir.lite.python.wrap_converter":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            native = module.wrapped_convert

            def announced(*args, **kwargs):
                print("inside the TFLite converter", file=sys.stderr, flush=True)
                return native(*args, **kwargs)

            module.wrapped_convert = announced

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Announce())
from converters.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_inside_the_tflite_converter(tmp_path):
    out = tmp_path / "out"
    earlier = _earlier_outputs(out, "m.tflite")
    run = Run(tmp_path, "-c", _ANNOUNCE_CONVERTER, "--model", "lite0", "--weights", "none",
              "--output", str(out / "m.tflite"), module=None)
    run.wait_for(lambda: "inside the TFLite converter" in run.stderr)
    time.sleep(0.5)  # the call runs for seconds and never returns to Python until it is done
    rc, took, stdout = run.stop(signal.SIGINT)
    _assert_stopped_cleanly(run, rc, took, stdout, earlier)


def test_sigterm_during_qat_stops_its_worker_and_removes_its_files(tmp_path):
    """The qat recipe fine-tunes in a worker process fed through a temp folder: both go."""
    out = tmp_path / "out"
    earlier = _earlier_outputs(out, "m.tflite")
    run = Run(tmp_path, "--model", "lite0", "--weights", "none", "--int8", "--recipe", "qat",
              "--keep-float", "none", "--num-calibration", "16", "--output", str(out / "m.tflite"))
    def jobs():  # (the CLI points TMPDIR at its own temp folder inside run.tmpdir)
        return [p.parent for p in run.tmpdir.rglob("job.json") if p.parent.name.startswith("efficientnet-qat-")]

    run.wait_for(jobs)
    job = jobs()[0]
    time.sleep(3.0)  # the worker is importing TensorFlow / fine-tuning
    workers = subprocess.run(["pgrep", "-f", str(job)], capture_output=True, text=True).stdout.split()
    assert workers, "no qat worker was running"
    rc, took, stdout = run.stop(signal.SIGTERM)
    _assert_stopped_cleanly(run, rc, took, stdout, earlier)
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(job)], capture_output=True, text=True).stdout.split()
    assert left == [], f"qat worker still running: {left}"


def test_sigterm_while_writing_keeps_every_earlier_output(tmp_path):
    out = tmp_path / "out"
    earlier = _earlier_outputs(out, "m.tflite", "m.json", "assets/model.tflite")
    run = Run(tmp_path, "--model", "lite0", "--weights", "none", "--output", str(out / "m.tflite"),
              "--report", str(out / "m.json"), "--android-assets", str(out / "assets"),
              env={"EFFICIENTNET_EDGE_TEST_WRITE_DELAY": "120"})
    run.wait_for(lambda: "writing " in run.stderr)
    staged = [p.name for p in out.rglob(".*.tmp")]
    assert len(staged) == 3, staged  # all three new files are fully written, none renamed yet
    rc, took, stdout = run.stop(signal.SIGTERM)
    _assert_stopped_cleanly(run, rc, took, stdout, earlier)


_WRITER = """
import sys
from edge.cliutil import write_atomic
write_atomic(sys.argv[1], b"new model " * 500_000)
"""


def test_sigkill_while_writing_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "m.tflite"
    earlier = _earlier_outputs(target.parent, "m.tflite")
    run = Run(tmp_path, "-c", _WRITER, str(target), module=None,
              env={"EFFICIENTNET_EDGE_TEST_WRITE_DELAY": "120"})
    run.wait_for(lambda: "writing " in run.stderr, timeout=60)
    rc, _, _ = run.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert target.read_bytes() == earlier[target]  # the final path holds the old file, whole
    # the fully written temp file stays (nothing runs after SIGKILL), under a hidden .tmp name
    assert [p.name.endswith(".tmp") and p.name.startswith(".m.tflite.")
            for p in target.parent.iterdir() if p != target] == [True]


_GIL_HOLDER = """
import sys, tempfile
from edge.cliutil import run_interruptible

def work():
    tempfile.mkdtemp(prefix="efficientnet-qat-")  # like the qat recipe's job folder
    print("holding the GIL", file=sys.stderr, flush=True)
    return sum(range(10**11))  # one long C call that never lets another thread run

sys.exit(run_interruptible(work, "efficientnet-demo"))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_is_immediate_while_the_work_holds_the_gil(tmp_path, sig):
    run = Run(tmp_path, "-c", _GIL_HOLDER, module=None)
    run.wait_for(lambda: "holding the GIL" in run.stderr, timeout=60)
    time.sleep(0.5)
    rc, took, _ = run.stop(sig)
    assert rc == 130 and took < 3.0, (rc, took, run.stderr)
    assert run.stderr.endswith("holding the GIL\n\refficientnet-demo: interrupted\n")
    assert list(run.tmpdir.iterdir()) == []
