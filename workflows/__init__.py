"""Temporal workflow code only: deterministic, no I/O, no cloud clients."""
