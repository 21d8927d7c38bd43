"""Solve time versus loop size on random GPU-flavoured loops, for both backends.

    python benchmarks/solve_scaling.py                       # the table in docs/benchmarks.md
    python benchmarks/solve_scaling.py --sizes 10 20 --seeds 3 --backends cpsat

Each instance is a `twill.model.generate.random_loop(n, seed)`: mixed units (capacities 1-2,
multi-cycle occupancies, multi-unit reservation tables) and loop-carried recurrences. Prints one
row per (size, backend): how many instances had their II proven optimal (and length and stage
count too), and the solve-time distribution.
"""

from __future__ import annotations

import argparse
import statistics
import time

from twill.model.generate import random_loop
from twill.solver.backend import Settings
from twill.solver.backends import make_backend
from twill.solver.search import search


def run(sizes: list[int], seeds: int, backends: list[str], time_limit: float, workers: int) -> None:
    header = ["ops", "backend", "II proven", "all levels proven", "II=MII", "median s", "max s", "mean II/MII"]
    rows = []
    for n in sizes:
        for name in backends:
            settings = Settings(workers=workers)
            times, ii_proven, all_proven, at_mii, ratios = [], 0, 0, 0, []
            for seed in range(seeds):
                loop = random_loop(n, seed)
                began = time.perf_counter()
                result = search(loop, make_backend(name, settings), time_limit, settings)
                times.append(time.perf_counter() - began)
                ii_proven += result.optimal
                all_proven += result.optimal and all(o.optimal for o in result.objectives)
                if result.schedule is not None:
                    at_mii += result.schedule.ii == result.bounds.mii
                    ratios.append(result.schedule.ii / result.bounds.mii)
            rows.append([str(n), name, f"{ii_proven}/{seeds}", f"{all_proven}/{seeds}", f"{at_mii}/{seeds}",
                         f"{statistics.median(times):.2f}", f"{max(times):.2f}",
                         f"{statistics.mean(ratios):.3f}" if ratios else "-"])
            print(" | ".join(rows[-1]), flush=True)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"
    print()
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--seeds", type=int, default=5, help="instances per size")
    parser.add_argument("--backends", nargs="+", default=["cpsat", "z3"])
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    parser.add_argument("--workers", type=int, default=0, help="CP-SAT workers (0: all cores)")
    args = parser.parse_args()
    run(args.sizes, args.seeds, args.backends, args.time_limit, args.workers)


if __name__ == "__main__":
    main()
