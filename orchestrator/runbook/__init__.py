"""Runbooks: the YAML format of a region switch, its models, loading and validation."""

from orchestrator.runbook.loader import Problem, RunbookError, load_file, load_text
from orchestrator.runbook.models import Runbook, Step

__all__ = ["Problem", "Runbook", "RunbookError", "Step", "load_file", "load_text"]
