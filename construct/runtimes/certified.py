"""The runtimes' answers, certified a posteriori from what the runtime itself returned.

Hugging Face and TransformerLens compute the network's function in their
own order of operations, so the mechanism certificate, which follows the
rounding of the numpy pass step by step, does not cover their answers. The
a-posteriori certificate does (``construct.programs.residual``): it bounds
an answer from that answer, the residual stream after the last block
(before the final layer norm), and the prompt alone, whatever computed
them. So each runtime hands over its own answers and its own last state,
rows as the network's layout places them, and nothing of the numpy pass
enters the bound. An algorithm without such a certificate (SGD, a custom
program) gets the bound inf, which every tolerance refuses.

The tolerance rule is ``CompiledNetwork.predict``'s: an answer whose bound
exceeds ``tolerance`` times ``net.scale`` (the largest of its magnitude and
the labels') is refused with a ``CertificateError``; None accepts every
answer.
"""

from __future__ import annotations

import numpy as np

from ..compiler.certificate import CertificateError
from ..compiler.compiled import DEFAULT_TOLERANCE, check_tolerance



def _certifiable(net) -> bool:
    algorithm = net.program.algorithm
    return algorithm is not None and algorithm.residual is not None


def bounds(net, state, X, y, x_query, predictions: np.ndarray) -> np.ndarray:
    """A proven bound on each of ``predictions`` (NaN where the program predicts nothing, inf where no
    certificate covers it), from ``state`` ((tokens, rows): the runtime's residual stream after its last block)."""
    predictions = np.asarray(predictions, np.float64)
    if not _certifiable(net):
        out = np.full(len(predictions), np.inf)
    else:
        state = np.asarray(state, np.float64)[:, : net.program.layout.width]
        out = net.program.algorithm.a_posteriori(net.program, state, X, y, x_query, predictions)
    return np.where(np.isnan(predictions), np.nan, out)


def accept(net, predictions: np.ndarray, bounds: np.ndarray, y, tolerance: float | None, runtime: str) -> None:
    """Refuse (``CertificateError``) the answers of ``runtime`` whose bound exceeds ``tolerance`` x their scale,
    naming the last of them (the query's, if it is one) and why."""
    if tolerance is None:
        return
    scale = net.scale(y, predictions)
    with np.errstate(over="ignore", invalid="ignore"):  # a tolerance near float64's largest accepts everything
        over = np.flatnonzero(bounds > tolerance * scale)
    if not over.size:
        return
    k = int(over[-1])
    which = "the query's prediction" if k == len(predictions) - 1 else f"prediction {k} (from {k} examples)"
    head = f"{which} {predictions[k]:.10g} from {runtime}"
    if not _certifiable(net):
        raise CertificateError(
            f"{head} has no certified bound: {net.program.name} has no a-posteriori certificate, and the mechanism "
            "certificate covers only this library's numpy pass (net.predict); pass tolerance=None to accept "
            "uncertified answers")
    raise CertificateError(
        f"{head} has the a-posteriori bound {bounds[k]:.3g} (residual certificate, from the answer and the residual "
        f"stream after the last block as {runtime} returned them), above the tolerance {tolerance:g} x its scale {scale[k]:.3g} (the largest of "
        "|prediction| and the labels' magnitudes); pass a larger tolerance to accept it (None accepts every answer)")
