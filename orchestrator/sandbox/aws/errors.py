"""The error type the sandbox's AWS handlers raise; serialized in the service's own protocol."""

from __future__ import annotations

from typing import Any

from moto.core.exceptions import ServiceException


class SandboxError(ServiceException):
    """An AWS error response (code + message, plus any members the error shape defines).

    Defined outside moto on purpose: moto looks up the error model of exceptions raised in its own
    modules by package name, which would fail for a shared module.
    """

    def __init__(self, code: str, message: str, **members: Any) -> None:
        super().__init__(code, message)
        for key, value in members.items():
            setattr(self, key, value)
