"""Property tests for programs, the library's own and yours: strategies, edge cases, and one check of all levels.

A program is right when three things agree on every task: its closed form,
its exact machine (``program.predict``) and its compiled network, each of
whose answers must lie within its certified bound. ``check_program`` tests
exactly that on tasks hypothesis draws, and returns what it saw::

    from construct import programs
    from construct.testing import check_program
    print(check_program(programs.ridge(2, 3, 0.5)))

A program built by hand passes its closed form and that closed form's own
float64 rounding (``examples/07_custom_program.py``; docs/TESTING.md).

* ``check``: ``check_program``, its ``Report`` and ``PropertyFailure``,
  and ``assert_agree``, the elementwise agreement the library's tests use;
* ``strategies``: ``Task`` and the strategies of regression tasks, the
  standard draw and one per adversarial family;
* ``catalogue``: ``EDGE_CASES``, the named edge cases.

Needs hypothesis, an optional dependency: ``pip install 'icl-construct[testing]'``.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as err:
    if err.name != "hypothesis":
        raise
    raise ImportError("construct.testing needs hypothesis, which is not installed: "
                      "pip install 'icl-construct[testing]'") from err

from .catalogue import EDGE_CASES
from .check import PropertyFailure, Report, assert_agree, check_program
from .strategies import (
    Task,
    cancelling_label_tasks,
    compiled_tasks,
    near_collinear_tasks,
    regression_tasks,
    repeated_row_tasks,
    ridge_tasks,
    sgd_tasks,
    tasks,
    underdetermined_tasks,
    zero_row_tasks,
)

__all__ = [
    "EDGE_CASES", "PropertyFailure", "Report", "Task", "assert_agree", "cancelling_label_tasks", "check_program",
    "compiled_tasks", "near_collinear_tasks", "regression_tasks", "repeated_row_tasks", "ridge_tasks", "sgd_tasks",
    "tasks", "underdetermined_tasks", "zero_row_tasks",
]
