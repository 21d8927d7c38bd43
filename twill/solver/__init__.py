"""Bounds, solver backends, the II search and the independent verifier."""
