"""Temporal activities: one module per provider (AWS, Kubernetes, HTTP checks, ...)."""
