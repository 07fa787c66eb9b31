"""CLI plumbing shared by every command: one-line errors, quiet native logs, atomic writes, and
Ctrl-C/SIGTERM that stop a long native call at once. Standard library only (never TensorFlow)."""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

T = TypeVar("T")

#: Exit status after SIGINT/SIGTERM (128 + SIGINT, the shell's convention).
EXIT_INTERRUPTED = 130

#: Test hook (tests/test_interrupts.py): seconds ``write_atomic`` sleeps between writing the temp
#: file and renaming it, so a test can deliver a signal while a write is in flight.
_WRITE_DELAY_ENV = "EFFICIENTNET_EDGE_TEST_WRITE_DELAY"

#: Environment that silences native loggers (set with setdefault: the user's own values win).
_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2"}
#: Python loggers of libraries that print to stderr (``WARNING:tensorflow:…``, absl).
_QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "jax")


def one_line(message: Any) -> str:
    """``message`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(message).split())


def fail(prog: str, message: Any) -> int:
    """Print ``PROG: error: message`` as one line on stderr; returns 2 (the usage-error status)."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr, flush=True)
    return 2


def warn(prog: str, message: Any) -> None:
    """Print ``PROG: warning: message`` as one line on stderr."""
    print(f"{prog}: warning: {one_line(message)}", file=sys.stderr, flush=True)


def show_warnings_once(prog: str, packages: Sequence[str], verbose: bool) -> Callable[..., None]:
    """A ``warnings.showwarning`` for a CLI: warnings raised from files below the folders in
    ``packages`` (ours) print once each, as one line ``PROG: warning: …``; other libraries'
    print only with ``verbose`` (otherwise they go to fd 2, the captured native log)."""
    roots = tuple(os.path.abspath(p) + os.sep for p in packages)
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        text = one_line(message)
        if os.path.abspath(filename).startswith(roots):
            if text not in shown:
                shown.add(text)
                warn(prog, text)
        elif verbose:
            print(warnings.formatwarning(message, category, filename, lineno, line).rstrip(),
                  file=sys.stderr)
    return show


def hide_native_exit_logs() -> None:
    """Point fd 2 at /dev/null for the rest of the process, so what native destructors print
    while the interpreter exits stays out of a CLI's output. Call it after the CLI's last
    message, from the console entry point only (never inside a host process such as pytest)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(fd, 2)
    os.close(fd)


class CliParser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line, ``PROG: error: MESSAGE (see --help)``,
    on stderr with exit status 2 (argparse prints the whole usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


# --- quiet native logs ---------------------------------------------------------------------------

class NativeLog:
    """What native code wrote to fd 2 inside :func:`quiet_native_logs` (``text`` once closed)."""

    def __init__(self, file: Any = None) -> None:
        self._file = file
        self._text = ""

    @property
    def text(self) -> str:
        if self._file is not None and not self._file.closed:
            self._file.flush()
            pos = self._file.tell()
            self._file.seek(0)
            data = self._file.read()
            self._file.seek(pos)
            return data.decode("utf-8", "replace")
        return self._text

    def _close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._text = self.text
            self._file.close()


_quiet_lock = threading.Lock()
_quiet_active: NativeLog | None = None


@contextlib.contextmanager
def quiet_native_logs(verbose: bool = False) -> Iterator[NativeLog]:
    """Capture what native libraries (TensorFlow, absl, oneDNN, the MLIR converter, LiteRT) write
    to file descriptor 2, while Python's ``sys.stderr`` (progress bars, our warnings,
    tracebacks) keeps reaching the real terminal.

    Yields a :class:`NativeLog` whose ``text`` holds the captured lines (for an error report).
    With ``verbose`` nothing is captured. Nested use (any thread) shares the outermost block,
    so a library call wrapped in it stays verbose inside a CLI's ``--verbose`` block. Also sets
    ``TF_CPP_MIN_LOG_LEVEL=3`` (unless set already) so a later TensorFlow import is quiet, and
    raises the TensorFlow/absl Python loggers to ERROR until exit.
    """
    global _quiet_active  # noqa: PLW0603
    log = NativeLog()
    with _quiet_lock:
        outer = _quiet_active
        if outer is None:
            _quiet_active = log
    if outer is not None:
        yield outer
        return
    try:
        if verbose:
            yield log
            return
        with _capture_fd2(log):
            yield log
    finally:
        with _quiet_lock:
            _quiet_active = None


@contextlib.contextmanager
def _capture_fd2(log: NativeLog) -> Iterator[None]:
    try:
        saved_fd = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to capture
        yield
        return
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import logging  # noqa: PLC0415

    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    capture = tempfile.TemporaryFile(prefix="native-log-")  # already unlinked: nothing to clean
    log._file = capture  # noqa: SLF001
    # sys.stderr is redirected only where it writes to fd 2 (under pytest's capsys it does not).
    old_stderr = sys.stderr
    try:
        redirect = old_stderr is not None and old_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        redirect = False
    terminal = None
    try:
        if redirect:
            old_stderr.flush()
            terminal = open(os.dup(saved_fd), "w", buffering=1,  # noqa: SIM115
                            encoding=getattr(old_stderr, "encoding", None) or "utf-8",
                            errors=getattr(old_stderr, "errors", None) or "backslashreplace")
            sys.stderr = terminal
        os.dup2(capture.fileno(), 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.__stderr__.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if terminal is not None:
            with contextlib.suppress(Exception):
                terminal.flush()
            if sys.stderr is terminal:
                sys.stderr = old_stderr
            terminal.close()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        log._close()  # noqa: SLF001


# --- atomic writes and interrupts ----------------------------------------------------------------

_commit_lock = threading.Lock()
_interrupted = False
_cleanup: set[str] = set()  # temp files/folders to remove if the process is interrupted
_manifest: str | None = None  # in a forked worker: file listing them for the parent


def _register(path: str) -> None:
    with _commit_lock:
        _cleanup.add(path)
        if _manifest is not None:  # before the path exists, so the parent always knows of it
            with open(_manifest, "a", encoding="utf-8") as f:
                f.write(path + "\n")


def _unregister(path: str) -> None:
    with _commit_lock:
        _cleanup.discard(path)


@contextlib.contextmanager
def removed_on_interrupt(path: str) -> Iterator[str]:
    """Register ``path`` (a temp file or folder outside the temp folder) for removal if
    :func:`run_interruptible`'s work is stopped by a signal while the block runs."""
    _register(path)
    try:
        yield path
    finally:
        _unregister(path)


def _stage(path: str, data: bytes) -> str:
    """Write ``data`` to a new temp file beside ``path`` (mode per umask, fsynced); its name."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
        _register(tmp)
        try:
            # 0o666 through the umask (and default ACLs), where mkstemp would give 0600.
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            _unregister(tmp)
        except BaseException:
            _unregister(tmp)
            raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _discard(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _unregister(tmp)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_files_atomic(files: Mapping[str, bytes]) -> None:
    """Write several files all or nothing: every temp file first, then the renames in one go.

    Each final file's mode follows the umask (0644 under 022). On any exception (including
    KeyboardInterrupt) the temp files are removed and no final path is touched; SIGKILL can
    leave a ``.NAME.xxxx.tmp`` file behind but never a partial file at a final path.

    Raises:
        OSError: a folder that cannot be created or written.
    """
    staged: list[tuple[str, str]] = []
    try:
        for path, data in files.items():
            staged.append((_stage(path, data), path))
        delay = float(os.environ.get(_WRITE_DELAY_ENV) or 0)
        if delay:
            print(f"writing {', '.join(files)}", file=sys.stderr, flush=True)
            time.sleep(delay)
        with _commit_lock:
            if _interrupted:  # a signal arrived: leave every earlier output untouched
                raise KeyboardInterrupt
            for tmp, path in staged:
                os.replace(tmp, path)
                _cleanup.discard(tmp)
        for folder in {os.path.dirname(os.path.abspath(p)) for _, p in staged}:
            _fsync_dir(folder)
    except BaseException:
        for tmp, _ in staged:
            _discard(tmp)
        raise


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and rename.

    The file's mode follows the umask (0644 under 022); the temp file is removed on any
    exception, KeyboardInterrupt included, and an interrupted run never renames it.

    Raises:
        OSError: the folder cannot be created or written.
    """
    write_files_atomic({path: data})


@contextlib.contextmanager
def sticky_interrupts() -> Iterator[Callable[[], None]]:
    """Within the block SIGINT and SIGTERM raise KeyboardInterrupt, and are remembered.

    Yields ``check``: it raises KeyboardInterrupt again if a signal has arrived. A loop that
    calls it once per item stops even when the first KeyboardInterrupt was swallowed on its way,
    as one raised inside a finaliser is (Python prints "Exception ignored in ..." and goes on).
    Off the main thread, where no handler can be installed, ``check`` never raises.
    """
    arrived = threading.Event()

    def check() -> None:
        if arrived.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def handler(signum: int, frame: Any) -> None:
        arrived.set()
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield check
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handler of :func:`run_interruptible`."""


def _stop_handler(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _remove(paths: Iterable[str]) -> None:
    for path in sorted(set(paths), key=len, reverse=True):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _say_interrupted(prog: str) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        # a progress bar may hold the line: start over it (and clear it on a terminal)
        lead = "\r\033[K" if sys.stderr.isatty() else "\r"
        sys.stderr.write(f"{lead}{prog}: interrupted\n")
        sys.stderr.flush()


def _can_fork() -> bool:
    """Fork only a process without TensorFlow (forking its threads can deadlock) whose stdout
    and stderr are real files (pytest's capsys buffers would stay in the child)."""
    if not hasattr(os, "fork") or "tensorflow" in sys.modules:
        return False
    try:
        return sys.stdout.fileno() >= 0 and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a worker never outlives a killed
    CLI)."""
    with contextlib.suppress(Exception):  # Linux only; elsewhere an orphan finishes its work
        import ctypes  # noqa: PLC0415

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _portable(error: BaseException) -> BaseException:
    """``error`` as it can cross a pipe: itself if it pickles, else its kind and message;
    unexpected errors carry the worker's traceback as a note."""
    import pickle  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    if not isinstance(error, (ValueError, LookupError, OSError)):
        error.add_note("in the worker process:\n" + "".join(traceback.format_exception(error)))
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        for kind in (ValueError, LookupError, OSError):
            if isinstance(error, kind):
                return kind(str(error))
        return RuntimeError(f"{type(error).__name__}: {error}")


def _worker(work: Callable[[], Any], scratch: str, write_fd: int, old_mask: Any) -> None:
    """The forked worker: does the work, sends the pickled result, never returns."""
    import pickle  # noqa: PLC0415

    global _manifest  # noqa: PLW0603
    status = 0
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the parent decides when to stop
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        die_with_parent()
        _manifest = os.path.join(scratch, ".cleanup")
        tempfile.tempdir = scratch
        os.environ["TMPDIR"] = scratch
        try:
            result: tuple = ("ok", work())
        except BaseException as e:  # noqa: BLE001 - handed to the parent
            result = ("error", _portable(e))
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(pickle.dumps(result))
    except BaseException:  # noqa: BLE001
        status = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _run_forked(work: Callable[[], T], prog: str, scratch: str) -> T:
    import pickle  # noqa: PLC0415

    stops = {signal.SIGINT, signal.SIGTERM}
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    handlers = {sig: signal.signal(sig, _stop_handler) for sig in stops}
    # Signals wait (blocked) across the fork: the worker must not run the parent's handler.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    pid = 0
    try:
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _worker(work, scratch, write_fd, old_mask)
        os.close(write_fd)
        write_fd = -1
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a waiting signal lands here
        chunks = []
        while chunk := os.read(read_fd, 1 << 20):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    except (_Stop, KeyboardInterrupt):
        for sig in stops:
            signal.signal(sig, signal.SIG_IGN)
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        listed: list[str] = []
        with contextlib.suppress(OSError), open(os.path.join(scratch, ".cleanup"), encoding="utf-8") as f:
            listed = f.read().splitlines()
        _remove(listed)
        _say_interrupted(prog)
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if not chunks:
        code = os.waitstatus_to_exitcode(status)
        how = f"signal {-code}" if code < 0 else f"status {code}"
        raise RuntimeError(f"{prog}: the worker process died ({how}) before finishing")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise value
    return value


def _run_threaded(work: Callable[[], T], prog: str, scratch: str) -> T:
    global _interrupted  # noqa: PLW0603
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            result["error"] = e

    handlers = {}
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, _stop_handler)
        tempfile.tempdir = scratch
        os.environ["TMPDIR"] = scratch
        worker = threading.Thread(target=target, name=f"{prog}-work", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    except (_Stop, KeyboardInterrupt):
        for sig in handlers:
            signal.signal(sig, signal.SIG_IGN)
        with _commit_lock:  # held until exit: no rename can happen after this point
            _interrupted = True
            _remove([*_cleanup, scratch])
            _say_interrupted(prog)
            os._exit(EXIT_INTERRUPTED)  # the worker may sit in a native call: do not wait
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
    if "error" in result:
        raise result["error"]
    return result["value"]


def run_interruptible(work: Callable[[], T], prog: str) -> T:
    """Run ``work()`` so that SIGINT (Ctrl-C) or SIGTERM stops it at once, whatever it is doing.

    ``work`` runs in a forked worker process while this one waits: a long native call that
    holds the GIL (TensorFlow's converter holds it for tens of seconds) cannot delay the stop.
    Python temp files (``tempfile``, ``TMPDIR``) go to a private folder for the duration. On a
    signal the worker is killed, that folder and every pending :func:`write_atomic` temp file
    are removed, ``PROG: interrupted`` is printed and ``SystemExit(130)`` is raised.

    Where forking is unsafe (TensorFlow already imported, or stdout/stderr are not real files,
    as under pytest's capsys) ``work`` runs in a thread instead, and a signal ends the process
    with ``os._exit(130)`` after the same clean-up — as soon as the GIL is free. Outside the main
    thread, where no signal handler can be installed, it simply calls ``work()``.

    Returns what ``work`` returns (it must pickle); re-raises what it raises. In the worker
    process, changes ``work`` makes to Python objects are not seen by the caller: return them.

    Raises:
        SystemExit: code 130 after SIGINT/SIGTERM.
        RuntimeError: the worker process died without a result (e.g. a segfault).
    """
    if threading.current_thread() is not threading.main_thread():
        return work()
    scratch = tempfile.mkdtemp(prefix=f"{prog}-")
    try:
        if _can_fork():
            return _run_forked(work, prog, scratch)
        return _run_threaded(work, prog, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["CliParser", "fail", "warn", "one_line", "show_warnings_once", "hide_native_exit_logs",
           "quiet_native_logs",
           "NativeLog",
           "write_atomic", "write_files_atomic", "removed_on_interrupt", "run_interruptible",
           "sticky_interrupts",
           "EXIT_INTERRUPTED"]
