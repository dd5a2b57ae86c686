"""The proof registry, the checks proofs make, and the runner behind ``python -m proofs``.

The runner prints each proof's status (``status.py``: proved for all values, at the sizes named, or in the ideal
limit) when it holds, so that a claim checked at three sizes is not printed as a claim about every size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Callable

import sympy

from .status import STATUS


@dataclass(frozen=True)
class Proof:
    """A named claim (hypotheses and conclusion) and the function that checks it with sympy."""

    name: str
    statement: str
    hypotheses: str
    check: Callable[[], None]
    group: str


PROOFS: list[Proof] = []


class ProofFailure(AssertionError):
    """A step of a proof did not hold."""


def proof(name: str, statement: str, hypotheses: str = ""):
    """Register the decorated function as the proof of ``statement``."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        if any(p.name == name for p in PROOFS):
            raise ValueError(f"two proofs are named {name!r}")
        PROOFS.append(Proof(name, statement, hypotheses, fn, fn.__module__.rsplit(".", 1)[-1]))
        return fn

    return register


def require(condition: bool, message: str | Callable[[], str]) -> None:
    """One step of a proof: fail with ``message`` unless ``condition`` holds.

    ``message`` may be a function that writes it, for a message that costs something to write.
    """
    if not condition:
        raise ProofFailure(message() if callable(message) else message)


def zero(expr, what: str, simplifier=sympy.simplify) -> None:
    """``expr`` simplifies to exactly 0."""
    require(simplifier(expr) == 0, f"{what}: {expr} is not 0")


def run(proof: Proof) -> tuple[bool, float, str]:
    """(holds, seconds, message) for one proof."""
    start = time.perf_counter()
    try:
        proof.check()
    except ProofFailure as failure:
        return False, time.perf_counter() - start, str(failure)
    except Exception as error:  # a proof that crashes has not proved anything
        return False, time.perf_counter() - start, f"{type(error).__name__}: {error}"
    return True, time.perf_counter() - start, ""


def main(argv: list[str] | None = None) -> int:
    """Run the proofs, print a table (or JSON); exit status 1 if any fails."""
    parser = argparse.ArgumentParser(prog="python -m proofs", description="Run the machine-checked proofs.")
    parser.add_argument("names", nargs="*", help="run only these proofs (default: all)")
    parser.add_argument("--list", action="store_true", help="list the proofs and exit")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    known = {p.name: p for p in PROOFS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"no proof named {', '.join(unknown)} (see --list)")
    chosen = [known[name] for name in args.names] if args.names else PROOFS
    if args.list:
        for p in chosen:
            print(f"{p.name:<34} {p.statement}")
        return 0
    results = []
    for p in chosen:
        holds, seconds, message = run(p)
        status = STATUS.get(p.name, "proved (status.py gives no status)")
        results.append({"name": p.name, "group": p.group, "statement": p.statement, "holds": holds,
                        "status": status, "seconds": round(seconds, 3), "failure": message})
        if not args.json:
            verdict = status if holds else "FAILED"
            print(f"{p.name:<34} {verdict:<26} {seconds:6.2f}s  {p.statement}", flush=True)
            if message:
                print(f"    {message}", flush=True)
    failed = sum(not r["holds"] for r in results)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        total = sum(r["seconds"] for r in results)
        held = [r["status"] for r in results if r["holds"]]
        kinds = ", ".join(f"{held.count(status)} {status}" for status in dict.fromkeys(held))
        print(f"\n{len(held)} of {len(results)} hold ({kinds}) in {total:.1f} s", file=sys.stderr)
    return 1 if failed else 0
