"""Read a request body under a size limit, refusing as soon as the limit is passed.

The limit applies to the bytes on the wire (checked against Content-Length
before reading, then while streaming) and, for gzip bodies, again to the
decompressed bytes, so a small "zip bomb" cannot expand past it.
"""

from __future__ import annotations

import zlib

from starlette.requests import ClientDisconnect, Request

from ingest.refusals import bad_request, too_large

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_JSON_TYPES = ("application/json", "text/plain")


def check_content_type(content_type: str | None) -> None:
    """JSON only. text/plain too: analytics.js sends it to avoid a CORS preflight."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type not in _JSON_TYPES:
        shown = repr(content_type) if content_type else "missing"
        raise bad_request("Content-Type", f"{shown}; expected application/json")


async def read_body(request: Request, *, limit_bytes: int, what: str) -> bytes:
    """The body, decompressed; `what` names the limit in the 413 message ("event", "batch")."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise bad_request("Content-Encoding", f"{encoding!r} is not supported; use gzip or none")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(what, limit_bytes, int(declared))
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit_bytes:
                raise too_large(what, limit_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad_request("body", "the client closed the connection") from None
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if encoding == "gzip":
        return gunzip(body, limit_bytes=limit_bytes, what=what)
    return body


def gunzip(compressed: bytes, *, limit_bytes: int, what: str) -> bytes:
    inflater = zlib.decompressobj(_GZIP_WBITS)
    try:
        plain = inflater.decompress(compressed, limit_bytes + 1)
    except zlib.error as exc:
        raise bad_request("Content-Encoding", f"the body is not valid gzip: {exc}") from None
    if len(plain) > limit_bytes:
        raise too_large(what, limit_bytes, decompressed=True)
    if not inflater.eof or inflater.unused_data:
        raise bad_request("Content-Encoding", "the gzip body is truncated or has trailing data")
    return plain
