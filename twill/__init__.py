"""twill: provably optimal software pipelining (and, later, warp specialization) for GPU loops."""

__version__ = "0.1.0"
