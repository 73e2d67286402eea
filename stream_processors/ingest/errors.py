"""What a request can be refused for: one HTTP status, one bounded metric reason, one line for the user."""

from __future__ import annotations

from stream_processors.errors import DriftlineError

__all__ = ["Rejected", "REASONS"]

REASONS = {
    "bad_json": 400, "bad_body": 400, "bad_cloudevent": 400, "invalid_event": 400, "row_mismatch": 400,
    "unauthorized": 401, "unsupported_media_type": 415, "too_large": 413, "too_many_rows": 413,
    "event_too_large": 413,
    "unknown_model": 422, "kafka_unavailable": 503, "kafka_timeout": 503,
}
"""Every reason a request is refused for (the ``reason`` label of the rejections metric) and its status."""


class Rejected(DriftlineError):
    """A request refused: ``reason`` is one of REASONS, ``message`` names the problem for the client."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        return REASONS[self.reason]
