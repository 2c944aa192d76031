"""`python -m orchestrator` runs the `failover` CLI."""

from orchestrator.cli import main

main()
