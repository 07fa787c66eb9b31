"""edge.cliutil: one-line usage errors, native logs kept off the terminal, atomic writes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from edge import cliutil
from edge.cliutil import CliParser, fail, run_interruptible, sticky_interrupts, write_atomic


def test_usage_error_is_one_line_with_exit_2(capsys):
    p = CliParser(prog="efficientnet-demo")
    p.add_argument("--top-k", type=int, required=True)
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--top-k", "many"])
    assert e.value.code == 2
    assert capsys.readouterr().err == (
        "efficientnet-demo: error: argument --top-k: invalid int value: 'many' (see --help)\n")


def test_fail_prints_one_line_and_returns_2(capsys):
    assert fail("efficientnet-demo", "bad\n  thing\there") == 2
    assert capsys.readouterr().err == "efficientnet-demo: error: bad thing here\n"


_QUIET_SCRIPT = r"""
import ctypes, os, sys
from edge.cliutil import quiet_native_logs
libc = ctypes.CDLL(None)
def native(text):  # C code writing to fd 2, as TensorFlow and LiteRT do
    data = text.encode()
    libc.write(2, data, len(data))
with quiet_native_logs() as log:
    native("I0000 native outer\n")
    print("tqdm-like python line", file=sys.stderr)
    with quiet_native_logs() as inner:
        native("I0000 native inner\n")
        assert inner is log
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] in ("3", sys.argv[1])
print("captured=" + repr(log.text))
native("native after exit\n")
with quiet_native_logs(verbose=True):
    with quiet_native_logs():  # a library's quiet block inside a CLI's --verbose one
        native("native verbose\n")
"""


def test_native_logs_are_captured_and_python_stderr_is_not(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _QUIET_SCRIPT, "3"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["tqdm-like python line", "native after exit", "native verbose"]
    assert "captured='I0000 native outer\\nI0000 native inner\\n'" in proc.stdout


def test_write_atomic_follows_the_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(str(tmp_path / "sub" / "m.tflite"), b"abc")
        os.umask(0o077)
        write_atomic(str(tmp_path / "private.json"), b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "sub" / "m.tflite").read_bytes() == b"abc"
    assert oct((tmp_path / "sub" / "m.tflite").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "private.json").stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.tflite", "private.json", "sub"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_write_atomic_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"earlier output")

    def broken_fsync(fd):
        raise exc("stopped while writing")

    monkeypatch.setattr(cliutil.os, "fsync", broken_fsync)
    with pytest.raises(exc):
        cliutil.write_files_atomic({str(target): b"new", str(tmp_path / "r.json"): b"{}"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.tflite"]
    assert target.read_bytes() == b"earlier output"


def _make_temp_dir():
    return tempfile.mkdtemp()  # as the qat recipe does for its worker's job folder


def _bad_labels():
    raise ValueError("bad labels")


@pytest.mark.parametrize("fork", [True, False], ids=["worker-process", "worker-thread"])
def test_run_interruptible_returns_raises_and_cleans_its_temp_folder(monkeypatch, fork):
    monkeypatch.setattr(cliutil, "_can_fork", lambda: fork)
    made = run_interruptible(_make_temp_dir, "efficientnet-demo")
    assert os.path.dirname(made) != tempfile.gettempdir()  # in the private folder …
    assert not os.path.exists(os.path.dirname(made))  # … which is gone afterwards
    with pytest.raises(ValueError, match="bad labels"):
        run_interruptible(_bad_labels, "efficientnet-demo")


class _SignalInFinaliser:
    """Sends SIGINT to this process from its finaliser, so the handler runs inside ``__del__``,
    where Python swallows the KeyboardInterrupt (it prints "Exception ignored in ...")."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)


def _loop(check) -> int:
    """100 items; a finaliser eats the Ctrl-C at item 3. Returns the items done."""
    done = 0
    for i in range(100):
        check()
        if i == 3:
            _SignalInFinaliser()  # made and dropped at once
        done += 1
    return done


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_loop():
    # Python's own handler, whatever this run inherited (a suite started in the background by a
    # non-interactive shell ignores SIGINT): the KeyboardInterrupt dies in the finaliser and
    # the loop runs on.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert _loop(lambda: None) == 100
        with sticky_interrupts() as check:
            with pytest.raises(KeyboardInterrupt):
                _loop(check)
            with pytest.raises(KeyboardInterrupt):  # it stays remembered
                check()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_cli_warnings_print_once_on_one_line_and_library_warnings_only_when_verbose(capsys):
    """What efficientnet-convert and efficientnet-train install as warnings.showwarning: a
    warning raised from our packages prints once, as one line; a library's is hidden unless
    --verbose (it would otherwise interleave with the CLI's own output)."""
    import warnings

    ours = os.path.join(os.path.dirname(cliutil.__file__), "classifier.py")
    theirs = os.path.join(os.path.dirname(pytest.__file__), "python_api.py")
    for verbose in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = cliutil.show_warnings_once(
                "prog", [os.path.dirname(cliutil.__file__)], verbose)
            for _ in range(3):
                warnings.warn_explicit("calibrating on\nthe default set", UserWarning, ours, 10)
            warnings.warn_explicit("a library's own warning", DeprecationWarning, theirs, 20)
        err = capsys.readouterr().err
        assert err.count("prog: warning: calibrating on the default set\n") == 1
        assert ("a library's own warning" in err) is verbose
