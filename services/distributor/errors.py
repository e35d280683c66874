"""Errors of the distributor. Messages name stages, classes and codes, never addresses."""

from __future__ import annotations

from dagmonitor.errors import DagmonitorError


class DistributorError(DagmonitorError):
    """Root of the distributor's own errors."""


class DeliveryError(DistributorError):
    """The SMTP server did not accept a message (or could not be reached)."""

    def __init__(self, stage: str, error: str, code: int | None) -> None:
        self.stage = stage
        self.error = error
        self.code = code
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        """``stage: error (code)``: safe to log and to store."""
        code = f" ({self.code})" if self.code is not None else ""
        return f"{self.stage}: {self.error}{code}"

    @classmethod
    def wrap(cls, exc: BaseException, *, stage: str) -> DeliveryError:
        code = getattr(exc, "code", None)
        return cls(stage, type(exc).__name__, code if isinstance(code, int) else None)
