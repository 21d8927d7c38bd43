"""Twill's compact joint formulation against the Twill paper's own time-indexed encoding.

    python benchmarks/encodings.py                                  # every problem, 300 s each
    python benchmarks/encodings.py --time-limit 60 --problems 'fa-fwd-b200*'

On each problem of benchmarks/problems/ (joint loops: FlashAttention forward on B200 and H100, whole
and sub-tiled, and a few small ones), one core each:

* ours: ``twill.solver.search.search`` with the CP-SAT backend, II in real cycles, proven optimal
  when every smaller II is proven infeasible. "s to II" is the time until the query that found
  the II (minimizing length at it) returned; "s all" adds the later objective levels.
  The last column compares the paper's time with that, where both found an II.
* the paper's: ``twill.solver.timeindexed.search_time_indexed``: cost normalization (U = 300),
  then Alg. 1 with the time-indexed SWP-AND-WS on Z3. Its II is in normalized units; "≈ cycles"
  multiplies it by the normalization's scale (real cycles per unit, sum C / sum C'), an estimate,
  since rounding changes the problem. Its optimality is relative to Alg. 1 (the stage count at an
  II is that of the first modulo schedule), so compare it to its own normalized MII.

Prints one line per problem as it goes, then a markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from twill.model.loader import load_spec
from twill.model.loop import Loop
from twill.solver.backend import Outcome, Query, Settings
from twill.solver.backends import make_backend
from twill.solver.bounds import compute_bounds
from twill.solver.search import search
from twill.solver.timeindexed import search_time_indexed

PROBLEMS = Path(__file__).resolve().parent / "problems"
HEADER = ["problem", "ops", "ours II", "MII", "ours", "s to II", "s all", "paper II (norm)", "norm MII",
          "≈ cycles", "paper", "paper s", "SMT calls", "paper s / ours s to II"]


class Stopwatch:
    """A backend that notes when each II of the sweep first returned a schedule."""

    def __init__(self, backend):
        self.backend, self.name = backend, backend.name
        self.began = time.perf_counter()
        self.found: dict[int, float] = {}

    def solve(self, loop: Loop, query: Query, seconds: float | None) -> Outcome:
        outcome = self.backend.solve(loop, query, seconds)
        if not query.limits and outcome.schedule is not None:
            self.found.setdefault(query.ii, time.perf_counter() - self.began)
        return outcome


def ours(loop: Loop, seconds: float, settings: Settings) -> tuple[list[str], float | None]:
    watch = Stopwatch(make_backend("cpsat", settings))
    result = search(loop, watch, seconds, settings)
    if result.schedule is None:
        return ["-", str(result.bounds.mii), result.status, "-", f"{result.seconds:.2f}"], None
    to_ii = watch.found[result.schedule.ii]
    return [str(result.schedule.ii), str(result.bounds.mii), result.status, f"{to_ii:.2f}",
            f"{result.seconds:.2f}"], to_ii


def paper(loop: Loop, seconds: float, settings: Settings) -> tuple[list[str], float | None]:
    result = search_time_indexed(loop, seconds, settings)
    norm_mii = compute_bounds(result.normalized.loop).mii
    calls = str(sum(step.length is not None for step in result.steps))
    if result.ii is None:
        return ["-", str(norm_mii), "-", result.status, f"{result.seconds:.2f}", calls], None
    return [str(result.ii), str(norm_mii), str(result.real_ii), result.status, f"{result.seconds:.2f}",
            calls], result.seconds


def run(pattern: str, seconds: float, workers: int) -> None:
    settings = Settings(workers=workers)
    rows = []
    for path in sorted(PROBLEMS.glob(pattern + ".yaml")):
        loop = load_spec(path)
        mine, ours_seconds = ours(loop, seconds, settings)
        theirs, paper_seconds = paper(loop, seconds, settings)
        ratio = f"{paper_seconds / ours_seconds:.1f}" if ours_seconds and paper_seconds else "-"
        rows.append([loop.name, str(len(loop.ops))] + mine + theirs + [ratio])
        print(" | ".join(rows[-1]), flush=True)
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print()
    print(line(HEADER))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="*", help="glob over benchmarks/problems/*.yaml names")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per problem and method")
    parser.add_argument("--workers", type=int, default=1, help="CP-SAT workers (Z3 uses one core)")
    args = parser.parse_args()
    run(args.problems, args.time_limit, args.workers)


if __name__ == "__main__":
    main()
