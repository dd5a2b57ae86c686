"""A measurement run in a fresh process with one BLAS and XLA thread, so that its peak memory and CPU time are its own.

The benchmark, the depth study and the cost table each measure one configuration per process this way: the
module, run with ``--child`` and the configuration, prints its row as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def measure(module: str, args: list[str], what: str) -> dict:
    """The row ``python -m module --child ARGS`` prints, run with one thread; RuntimeError naming ``what`` and the
    child's last line on stderr if it fails."""
    done = subprocess.run([sys.executable, "-m", module, "--child", *args], capture_output=True, text=True,
                          env={**os.environ, **SINGLE_THREAD})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise RuntimeError(f"the measurement of {what} failed in its subprocess: {last}")
    return json.loads(done.stdout)
