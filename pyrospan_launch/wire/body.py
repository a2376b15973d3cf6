"""Request bodies: HTTP content encodings undone within a size cap, media types, protobuf.

Decompression is streamed with a hard output cap shared by the whole request, so a small
gzip bomb cannot expand into gigabytes.  Nothing here does I/O.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

from google.protobuf.message import DecodeError as _ProtobufDecodeError

from pyrospan_launch.wire.errors import DecodeError

#: Default cap on the bytes one request may decompress to (outer body + inner profiles).
MAX_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024

GZIP_MAGIC: Final = b"\x1f\x8b"
_CHUNK: Final = 1024 * 1024

PROTOBUF_TYPES: Final = frozenset(
    {"application/x-protobuf", "application/protobuf", "application/proto"}
)
JSON_TYPES: Final = frozenset({"application/json"})


class Budget:
    """Bytes a request may still decompress to."""

    __slots__ = ("limit", "remaining")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit


def _inflate(data: bytes, wbits: int, budget: Budget) -> bytes:
    """Stream-decompress ``data`` (possibly several gzip members) within ``budget``."""
    out = bytearray()
    pending = data
    try:
        while True:
            dec = zlib.decompressobj(wbits)
            chunk = pending
            while not dec.eof:
                room = budget.remaining - len(out)
                # max_length=0 would mean "unlimited": always ask for at least one byte,
                # and one byte more than allowed so overflow is detectable.
                piece = dec.decompress(chunk, min(_CHUNK, room + 1))
                out += piece
                if len(out) > budget.remaining:
                    raise DecodeError(f"body decompresses to more than {budget.limit} bytes", 413)
                chunk = dec.unconsumed_tail
                if not piece and not chunk:
                    raise DecodeError("truncated compressed data")
            pending = dec.unused_data
            if not pending.strip(b"\x00"):
                break
    except zlib.error as exc:
        raise DecodeError(f"bad compressed data: {exc}") from None
    budget.remaining -= len(out)
    return bytes(out)


def gunzip(data: bytes, budget: Budget) -> bytes:
    return _inflate(data, 16 + zlib.MAX_WBITS, budget)


def decompress_body(
    body: bytes,
    content_encoding: str | None,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> bytes:
    """Undo an HTTP ``Content-Encoding`` (identity, gzip, or deflate) with a size cap."""
    return decompress_within(body, content_encoding, Budget(max_decompressed_bytes))


def decompress_within(body: bytes, content_encoding: str | None, budget: Budget) -> bytes:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, budget)
    if encoding == "deflate":
        # RFC 9110 "deflate" is a zlib stream; 32 + MAX_WBITS also accepts gzip.
        return _inflate(body, 32 + zlib.MAX_WBITS, budget)
    raise DecodeError(f"unsupported content-encoding {encoding!r}", 415)


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json`` (any parameters)."""
    return media_type(content_type) in JSON_TYPES


def parse_message(cls: Any, data: bytes, what: str) -> Any:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except _ProtobufDecodeError as exc:
        raise DecodeError(f"bad {what} protobuf: {exc}") from None
    except Exception as exc:  # the C/upb backends raise a few other types on garbage
        raise DecodeError(f"bad {what} protobuf: {type(exc).__name__}") from None
    return msg
