"""Helpers shared by the AWS step types."""

from __future__ import annotations


def region_of_arn(arn: str) -> str:
    """The region field of an ARN (arn:aws:service:REGION:account:...)."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""
