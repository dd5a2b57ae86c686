"""The programs: the paper's two chains and their n-example generalisations, one module each, and their registry.

Each module holds its program constructor, its domain theory (``theory``:
every register's bound from the input box, with the proof of each bound
beside the line that computes it) and its registry entry (``registry``:
parameters, closed form, exact form, the paper's sizes), which the command
line, the demo, the export and the exact answers read. All four run on the
prompt of ``construct.raw.prompt`` and leave the prediction in the one-row
register ``pred``. Parameters may be numbers or sympy expressions
(the proofs pass symbols); numbers are checked, symbols are taken as given.

How an n-example program works. Every instruction acts on every column, so a
program cannot "run the update at column 2k-1 only". Instead a *block* of
instructions is applied to all columns at once, and the learner's state
(``w`` for SGD; ``Ainv`` and ``w`` for ridge) travels from the y~ column of
example k-1 to that of example k by ``mov`` with offset 2. After block ``l``
the y~ columns of examples 1..l hold their correct state, and they keep it
in later blocks because their sources no longer change (induction on l);
``n`` blocks finish the prompt. Two boundary facts make column 0 (x~_1) a
fixed point that holds the initial state, as the y~ column of example 1
reads it:

* the update reads ``x = x_in(column i-1) - x_in(column i)``, which is x_k at
  the y~ column of example k (its own x slot is empty) and 0 at column 0;
  the y slot of an x~ column is 0, so column 0 sees the example (0, 0);
* SGD's penalty ``lam w`` does not vanish on (0, 0), so it is multiplied by
  ``gate = lam * (pos - pos of column i-1)``: 0 at column 0, lam elsewhere.

The x~ columns other than 0 compute well-defined values that nothing reads
except the final ``mov w_pred <- w`` (offset 1), which takes each x~
column's weights from the y~ column just before it: x~ column 2k sees the
example ``(-x_{k+1}, 0)`` and runs the same recurrence on the examples of
columns 2k, 2k-2, ..., 0. So after any number of blocks every column holds
the learner's state on some sequence of at most n examples, each
``(x_k, y_k)``, ``(-x_k, 0)`` or ``(0, 0)``: what each ``theory`` bounds.
"""

from .gd import gd
from .registry import REGISTRY, Algorithm, Parameter, get
from .ridge import ridge
from .ridge_newton import ridge_newton
from .sgd import sgd
from .sgd_step import sgd_step
from .sherman_morrison_step import sherman_morrison_step

__all__ = ["REGISTRY", "Algorithm", "Parameter", "gd", "get", "ridge", "ridge_newton", "sgd", "sgd_step",
           "sherman_morrison_step"]
