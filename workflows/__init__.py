"""Temporal workflow code only: deterministic orchestration, no I/O, no cloud clients.

The worker's list of workflows is `workflows.registry.WORKFLOWS`. This file imports nothing: the
sandbox runs it again for every workflow it starts.
"""
