"""CP-SAT parameters shared by every CP-SAT query (per-II model and joint relaxation)."""

from __future__ import annotations

import os

from twill.solver.backend import Settings

# Workers when the settings leave it open (Settings.workers == 0): all cores, but at least this many.
# CP-SAT's portfolio with 2 workers lacks the LNS and probing workers that find tight joint schedules;
# on the 2-core development machine 8 time-shared workers found FlashAttention schedules 20x sooner
# (docs/benchmarks.md).
PORTFOLIO = 8


def portfolio_workers() -> int:
    return max(PORTFOLIO, os.cpu_count() or 1)


def configure(params, settings: Settings, seconds: float | None) -> None:
    """Seed, workers and limit: one worker and work-based limits when deterministic."""
    params.random_seed = settings.seed
    if settings.deterministic:
        params.num_workers = 1
        if seconds is not None:
            params.max_deterministic_time = max(seconds, 0.0)
    else:
        params.num_workers = settings.workers or portfolio_workers()
        if seconds is not None:
            params.max_time_in_seconds = max(seconds, 0.0)
