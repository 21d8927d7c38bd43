"""How long `twill solve` takes on FlashAttention-sized joint problems, and where the time goes.

    python benchmarks/fa_solve.py                       # every problem, 120 s each
    python benchmarks/fa_solve.py --time-limit 60 --only 'fa-fwd-h100*'

Runs ``twill.solver.search.search`` with the CP-SAT backend and default settings (what `twill solve
FILE` does) on benchmarks/problems/fa-*.yaml and on the kernel specs of specs/kernels/ (fa-fwd,
fa-bwd, gemm, each for H100 and B200) when they exist, and times each solver call:

* relax: the joint relaxation that proves a range of II infeasible before the sweep (if the backend has it);
* sweep: the per-II queries that came back infeasible (or unknown), with their count;
* first: the query at the final II (which also minimizes the first objective level);
* then one column per later objective level.

"optimal" means the II and every objective level are proven. Prints one line per problem as it goes,
then a markdown table.

``--baseline`` runs the search as it was before the joint speed-ups, on the same model: length as
the first level (minimized with the II), no joint relaxation, no anchoring, CP-SAT's default
portfolio on this machine's cores (Settings.workers = cores).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import time
from pathlib import Path

from twill.model.loader import load_spec
from twill.model.objectives import levels
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver import cpsat, search as search_module
from twill.solver.search import search

BASELINE_LEVELS = ("length", "handoff_bytes", "ring_slots", "roles")


class Baseline:
    """The CP-SAT backend without the relaxation or anchoring, on all cores."""

    name = "cpsat"

    def __init__(self):
        self.backend = make_backend("cpsat", Settings(workers=os.cpu_count() or 1))

    def solve(self, loop, query, seconds):
        return self.backend.solve(loop, query, seconds)


def use_baseline() -> None:
    cpsat.anchored = lambda loop, query: False
    search_module.levels = lambda loop: BASELINE_LEVELS if loop.joint else levels(loop)

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = sorted((ROOT / "benchmarks" / "problems").glob("fa-*.yaml"))
KERNELS = [("fa-fwd", "h100"), ("fa-fwd", "b200"), ("gemm", "h100"), ("gemm", "b200"),
           ("fa-bwd", "h100"), ("fa-bwd", "b200")]


def cases() -> list[tuple[str, Path, str | None]]:
    found = [(path.stem, path, None) for path in PROBLEMS]
    for kernel, machine in KERNELS:
        path = ROOT / "specs" / "kernels" / f"{kernel}.yaml"
        if path.exists():
            found.append((f"{kernel} -m {machine}", path, machine))
    return found


class Timed:
    """The backend, with the seconds of each call noted by phase."""

    def __init__(self, backend):
        self.backend, self.name = backend, backend.name
        self.calls: list[tuple[str, int, str, float]] = []  # (objective or "relax", II, status, seconds)
        if hasattr(backend, "lower_bound"):
            self.lower_bound = self._lower_bound

    def solve(self, loop, query, seconds):
        began = time.perf_counter()
        outcome = self.backend.solve(loop, query, seconds)
        self.calls.append((query.objective if query.limits else "sweep", query.ii, outcome.status,
                           time.perf_counter() - began))
        return outcome

    def _lower_bound(self, loop, lo, hi, seconds):
        began = time.perf_counter()
        outcome = self.backend.lower_bound(loop, lo, hi, seconds)
        self.calls.append(("relax", lo, outcome.status, time.perf_counter() - began))
        return outcome


def run(name: str, path: Path, machine: str | None, seconds: float, baseline: bool) -> list[str]:
    loop = load_spec(path, machine)
    timed = Timed(Baseline() if baseline else make_backend("cpsat", Settings()))
    began = time.perf_counter()
    result = search(loop, timed, seconds, Settings())
    total = time.perf_counter() - began
    relax = sum(s for phase, _, _, s in timed.calls if phase == "relax")
    sweep = [(ii, status, s) for phase, ii, status, s in timed.calls if phase == "sweep"]
    final = result.schedule.ii if result.schedule else None
    first = sum(s for ii, status, s in sweep if ii == final and status in ("optimal", "feasible"))
    swept = [s for ii, status, s in sweep if not (ii == final and status in ("optimal", "feasible"))]
    names = search_module.levels(loop)[1:]
    later = {name: sum(s for phase, _, _, s in timed.calls if phase == name) for name in names}
    proven = result.optimal and all(o.optimal for o in result.objectives)
    status = "optimal" if proven else result.status + ("" if result.schedule is None else " (levels open)")
    ii = "-" if final is None else str(final)
    level_text = " ".join(f"{n} {v:.2f}" for n, v in later.items())
    values = ", ".join(f"{o.name} {o.value}{'' if o.optimal else ' (bound ' + str(o.bound) + ')'}"
                       for o in result.objectives)
    print(f"{name}: II {ii} (MII {result.bounds.mii}, proven >= {result.lower_bound}) {status} {total:.2f}s; "
          f"relax {relax:.2f} sweep {sum(swept):.2f}/{len(swept)} first {first:.2f} {level_text}; {values}",
          flush=True)
    return [name, str(len(loop.ops)), ii, str(result.bounds.mii), status, f"{total:.2f}", f"{relax:.2f}",
            f"{sum(swept):.2f} ({len(swept)})", f"{first:.2f}"] + [f"{later[n]:.2f}" for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per problem (whole search)")
    parser.add_argument("--only", default="*", help="glob on problem names")
    parser.add_argument("--baseline", action="store_true", help="the search before the joint speed-ups")
    args = parser.parse_args()
    if args.baseline:
        use_baseline()
    rows = [run(name, path, machine, args.time_limit, args.baseline) for name, path, machine in cases()
            if fnmatch.fnmatch(name, args.only)]
    later = [f"{name} s" for name in search_module.levels(load_spec(PROBLEMS[0]))[1:]] if PROBLEMS else []
    header = ["problem", "ops", "II", "MII", "status", "s total", "relax", "sweep (queries)", "first"] + later
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
