"""A measurement run in a fresh process with one BLAS and XLA thread, so that its peak memory and CPU time are its own.

The benchmark, the depth study and the cost table each measure one configuration per process this way: the
module, run with ``--child`` and the configuration, prints its row as JSON. The depth study and the cost table
are tables of (algorithm, n), with the same options (``parser``) and loop (``rows``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

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


def parser(module: str, doc: str, algorithms, lengths, out: Path) -> argparse.ArgumentParser:
    """The options of a table of (algorithm, n), one per process: ``--algo``, ``--n``, ``--out`` (``out`` by default
    for the full table) and the hidden ``--child ALGO N``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n")[0])
    parser.add_argument("--algo", nargs="+", default=list(algorithms), choices=list(algorithms))
    parser.add_argument("--n", nargs="+", type=int, default=list(lengths))
    parser.add_argument("--out", type=Path, default=None, help=f"the JSON file to write (default, for the full "
                        f"table: {out.relative_to(out.parent.parent.parent)})")
    parser.add_argument("--child", nargs=2, metavar=("ALGO", "N"), help=argparse.SUPPRESS)
    return parser


def rows(module: str, args, table) -> list[dict]:
    """Each (algorithm, n) of ``args`` measured in its own process (``measure``), its line of ``table`` printed as
    it comes."""
    out = []
    for algo in args.algo:
        for n in args.n:
            out.append(measure(module, [algo, str(n)], f"{algo} at n = {n}"))
            print(table(out[-1:]).splitlines()[-1], flush=True)
    return out
