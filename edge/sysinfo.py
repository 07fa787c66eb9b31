"""What a speed figure was measured on: CPU model, the SIMD flags that matter for int8, cores."""
from __future__ import annotations

import os
import platform

#: /proc/cpuinfo flags that change TFLite/XNNPACK speed (int8 dot products above all).
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
               "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimddp", "i8mm", "sve")


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (``taskset``, a container's cpuset),
    not the machine's count, so that default thread and worker counts do not oversubscribe."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def cpu_summary() -> dict:
    """``{'model', 'flags', 'cores', 'usable_cores', 'machine'}`` for this machine.

    ``flags`` lists the :data:`SPEED_FLAGS` present (Linux /proc/cpuinfo; empty elsewhere);
    ``usable_cores`` is the CPU affinity of this process (what a pool can really use).
    """
    model, flags = platform.processor() or "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "Features"):
                    flags.update(value.split())
    except OSError:
        pass
    return {"model": model or platform.machine(), "flags": [f for f in SPEED_FLAGS if f in flags],
            "cores": os.cpu_count() or 1, "usable_cores": usable_cores(), "machine": platform.machine()}


def cpu_line() -> str:
    """One line to print beside a speed figure (with the load average: other processes'
    demand for the same cores while it was measured)."""
    c = cpu_summary()
    try:
        load = " load average %.1f %.1f %.1f," % os.getloadavg()
    except (AttributeError, OSError):
        load = ""
    return (f"CPU: {c['model']} ({c['machine']}), {c['usable_cores']}/{c['cores']} cores usable,"
            f"{load} flags: {' '.join(c['flags']) or 'none known'}")
