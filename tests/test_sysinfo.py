"""usable_cores(), the default for every thread and worker count in edge/ and the benchmarks,
follows the process's CPU affinity (taskset, a cpuset), and the printed CPU line says so."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")


def test_usable_cores_follows_cpu_affinity():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
            "from edge.sysinfo import usable_cores, cpu_line;"
            "print(usable_cores()); print(cpu_line())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "1"
    assert f"1/{os.cpu_count()} cores usable" in out[1]
