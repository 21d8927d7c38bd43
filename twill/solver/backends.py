"""The solver backends by name."""

from __future__ import annotations

from twill.solver.backend import Backend, Settings

BACKENDS = ("cpsat", "z3")


def make_backend(name: str, settings: Settings) -> Backend:
    if name == "cpsat":
        from twill.solver.cpsat import CpSatBackend
        return CpSatBackend(settings)
    if name == "z3":
        from twill.solver.z3backend import Z3Backend
        return Z3Backend(settings)
    raise ValueError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
