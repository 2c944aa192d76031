"""The region guard: watch a runbook's active region, confirm an outage, propose the switch."""
