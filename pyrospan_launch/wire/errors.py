"""The error a request body that cannot be decoded raises, on either side."""

from __future__ import annotations


class DecodeError(ValueError):
    """A request body could not be decoded.

    ``http_status`` is the status a server should answer with: 400 for malformed input,
    413 when the body decompresses past the cap, 415 for an unsupported content type or
    content encoding.
    """

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status
