"""--strategy through tf.distribute gives the one-device result: MirroredStrategy on 2 logical
CPU devices, and MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1 (TF_CONFIG).

Same seed, same global batch, same images in the same order (the pipeline's augmentation is
seeded per image), head dropout 0 (its random mask is the only per-device randomness): the
runs differ only in the order of float sums (per-replica losses and gradients, then all-reduce).
Tolerance: per-epoch mean loss within 1e-5, validation accuracy equal, and the trained
models' probabilities on the held-out images within 1e-5 (measured here: 2e-8 and 1.2e-7).
Slow (about 5 CPU-minutes: three trainings, four processes): ``pytest -m slow``.
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.train_digits import write_digits

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOSS_TOL, PROB_TOL = 1e-5, 1e-5
SIZE = 32
ARGS = ["--input-size", str(SIZE), "--head-epochs", "2", "--epochs", "1", "--batch-size", "8",
        "--dropout", "0", "--float16", "--quiet"]
TWO_CPUS = ("import sys, tensorflow as tf; "
            "tf.config.set_logical_device_configuration(tf.config.list_physical_devices('CPU')[0], "
            "[tf.config.LogicalDeviceConfiguration()] * 2); "
            "from training.cli import main; sys.exit(main(sys.argv[1:]))")


def _cli(args, env=None, code=None):
    cmd = [sys.executable] + (["-c", code] if code else ["-m", "training.cli"]) + args
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _done(proc, timeout=900):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    write_digits(str(root / "digits"), per_class=12, classes=(0, 1, 2))
    return root


@pytest.fixture(scope="module")
def one_device(data):
    out = data / "one"
    _done(_cli([str(data / "digits"), "--output", str(out), "--strategy", "one-device", *ARGS]))
    return out


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _predictions(out):
    from converters.efficientnet import create_model
    from edge.preprocess import preprocess
    from training.train import _spec
    from training.options import TrainOptions

    with open(out / "split.csv", encoding="utf-8") as f:
        paths = [str(out / r["path"]) for r in csv.DictReader(f) if r["split"] != "train"]
    spec = _spec(TrainOptions(data="", output="", input_size=SIZE))
    x = np.stack([preprocess(p, spec) for p in paths]).astype(np.float32)
    model = create_model("lite0", str(out / "model.weights.h5"), classes=3, input_size=SIZE)
    return model.predict(x, verbose=0)


def _same_result(ref, got, strategy):
    a = json.loads((ref / "report.json").read_text())
    b = json.loads((got / "report.json").read_text())
    assert b["strategy"].startswith(strategy)
    assert (ref / "split.csv").read_text() == (got / "split.csv").read_text()
    assert len(a["history"]) == len(b["history"]) == 3
    for ha, hb in zip(a["history"], b["history"]):
        assert abs(ha["loss"] - hb["loss"]) <= LOSS_TOL, (ha, hb)
        assert abs(ha["val_loss"] - hb["val_loss"]) <= LOSS_TOL, (ha, hb)
        assert ha["val_accuracy"] == hb["val_accuracy"]
    diff = float(np.abs(_predictions(ref) - _predictions(got)).max())
    print(f"{strategy}: max |Δloss| {max(abs(x['loss'] - y['loss']) for x, y in zip(a['history'], b['history'])):.2e}, "
          f"max |Δprobability| {diff:.2e}")  # pytest -s
    assert diff <= PROB_TOL


def test_mirrored_on_two_logical_cpus_gives_the_one_device_result(data, one_device):
    out = data / "mirrored"
    _done(_cli([str(data / "digits"), "--output", str(out), "--strategy", "mirrored", *ARGS],
               code=TWO_CPUS))
    _same_result(one_device, out, "MirroredStrategy on 2 replicas")


def test_two_local_workers_give_the_one_device_result(data, one_device):
    out = data / "multi"
    ports = _free_ports(2)
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                  "task": {"type": "worker", "index": index}}
        workers.append(_cli([str(data / "digits"), "--output", str(out), "--strategy",
                             "multi-worker", *ARGS], env={"TF_CONFIG": json.dumps(config)}))
    logs = [_done(w) for w in workers]
    assert "wrote" in logs[0] and "wrote" not in logs[1]  # only the chief writes
    _same_result(one_device, out, "MultiWorkerMirroredStrategy on 2 replicas (2 workers)")
