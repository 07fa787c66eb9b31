"""A training run killed at any point (real SIGKILL while a checkpoint is being written, real
SIGTERM in the middle of the int8 conversion) keeps its last good checkpoint, leaves no
partial output file, and --resume finishes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from benchmarks.train_digits import write_digits
from training import checkpoint as ckpt
from training.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINAL = {"model.weights.h5", "model_fp32.tflite", "model_int8.tflite", "report.json", "report.md",
         "confusion_matrix.png"}


class Run:
    """``efficientnet-train`` in a child process; stderr lines collected as they come."""

    def __init__(self, args, env=None):
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "training.cli", *args], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pred, count=1, timeout=600):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            hits = [ln for ln in self.lines if pred(ln)]
            if len(hits) >= count:
                return hits
            if self.proc.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"exited {self.proc.returncode} first:\n" + "\n".join(self.lines[-20:]))
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail("timed out:\n" + "\n".join(self.lines[-20:]))

    def finish(self, timeout=60):
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc


def _temps(folder):
    return [os.path.join(r, f) for r, _, files in os.walk(folder) for f in files if f.endswith(".tmp")]


def test_killed_runs_keep_their_last_checkpoint_and_resume_to_the_end(tmp_path):
    data, out = tmp_path / "digits", tmp_path / "run"
    write_digits(str(data), per_class=10, classes=(0, 1, 2))
    args = [str(data), "--output", str(out), "--input-size", "32", "--head-epochs", "2",
            "--epochs", "1", "--batch-size", "8", "--num-calibration", "8", "--quiet"]
    last = out / "checkpoints" / "last.npz"

    # 1. SIGKILL while the second checkpoint is written (the write pauses between the temp
    #    file and the rename): the first checkpoint stays whole, no final output exists.
    run = Run(args, env={"EFFICIENTNET_EDGE_TEST_WRITE_DELAY": "3"})
    run.wait_for(lambda ln: ln.startswith("writing ") and "last.npz" in ln, count=2)
    os.kill(run.proc.pid, signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    kept = ckpt.load(str(last))
    assert (kept.state.phase, kept.state.epoch) == (1, 1)  # the last good one: epoch 1 of phase 1
    assert _temps(out)  # SIGKILL cannot clean up its temp file...
    assert not FINAL & set(os.listdir(out))  # ...but no final path ever holds a partial file

    # 2. --resume, then SIGTERM during the int8 conversion: exit 130 within seconds, temp
    #    files removed, still no final output.
    run = Run(["--output", str(out), "--resume"] + args[3:])
    run.wait_for(lambda ln: "converting to fp32 and int8" in ln)
    time.sleep(1)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 130
    assert time.monotonic() - t0 < 10
    assert run.lines[-1] == "efficientnet-train: interrupted"
    assert any("resuming from" in ln and "phase 1, 1 epochs done" in ln for ln in run.lines)
    assert not _temps(out) and not FINAL & set(os.listdir(out))
    done = ckpt.load(str(last)).state
    assert done.phase == 3 and [(h["phase"], h["epoch"]) for h in done.history] == [(1, 1), (1, 2), (2, 1)]

    # 3. --resume once more: training is complete, so it only exports.
    assert main(["--output", str(out), "--resume", "--quiet"]) == 0
    assert FINAL <= set(os.listdir(out)) and not _temps(out)
    report = json.loads((out / "report.json").read_text())
    assert [(h["phase"], h["epoch"]) for h in report["history"]] == [(1, 1), (1, 2), (2, 1)]
    assert report["history"][0] == kept.state.history[0]  # the epoch trained before the kill
