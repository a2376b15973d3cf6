"""pyrospan-run: tracing and profiling together, every root span linked to its CPU profile."""

from __future__ import annotations

__version__ = "0.1.0"
