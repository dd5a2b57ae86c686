"""Test configuration: deterministic hypothesis by default, the --runslow option, and --folder-times FILE."""

import json
import os
import platform
from collections import defaultdict

if "PYTEST_XDIST_WORKER" in os.environ:  # two workers on two cores: one BLAS thread each, set before numpy loads
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# "ci" (the default) is deterministic: the same examples on every run and machine.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--folder-times", metavar="FILE", default=None,
                     help="write each folder of tests/ with its number of tests and their summed time (setup, call, "
                          "teardown) to FILE as JSON (docs/TESTING.md's table quotes such a file)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a check too slow for every run (use --runslow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# -- --folder-times: the time each folder's tests take ------------------------------------------------------------

_SECONDS = defaultdict(float)
_TESTS = defaultdict(set)


def _folder(nodeid: str) -> str:
    """tests/raw/test_machine.py::test_x -> raw (the folder under tests/ a test lives in)."""
    parts = nodeid.split("::")[0].split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "/".join(parts[:-1]) or "."


def pytest_runtest_logreport(report):
    # under xdist the controller receives every worker's reports, with the durations the worker measured
    _SECONDS[_folder(report.nodeid)] += report.duration
    _TESTS[_folder(report.nodeid)].add(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--folder-times")
    if path is None or hasattr(session.config, "workerinput"):  # the controller writes the file, not the workers
        return
    result = {
        "command": " ".join(["python -m pytest", *session.config.invocation_params.args]),
        "exit_status": int(exitstatus),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "folders": {folder: {"tests": len(_TESTS[folder]), "seconds": round(_SECONDS[folder], 1)}
                    for folder in sorted(_SECONDS)},
    }
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
