"""HTTP content codings: ``Content-Encoding: gzip|deflate`` request bodies and ``Accept-Encoding`` responses.

tritonclient's ``request_compression_algorithm`` / ``response_compression_algorithm`` (and curl's
``--compressed``) use these. Decompression is bounded: a body that inflates past ``MAX_DECODED_BYTES``
is refused with a 413 instead of exhausting the function's memory. The standard library's ``zlib`` does
the work (gzip is zlib with a different header: ``wbits=16+MAX_WBITS``; raw deflate is accepted too,
as some clients send it under ``deflate``).

Example:
    >>> import gzip
    >>> from modelfn_runtime.http import Headers, HttpRequest
    >>> request = HttpRequest("POST", "/v2/models/m/infer", Headers({"Content-Encoding": "gzip"}), body=gzip.compress(b"{}"))
    >>> decode_request(request).body
    b'{}'
"""

from __future__ import annotations

import zlib
from dataclasses import replace

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .http import Headers, HttpRequest, HttpResponse

MAX_DECODED_BYTES = 64 * 1024 * 1024
"""The most bytes a compressed request body may inflate to (its compressed size counts against Lambda's 6 MB)."""
MIN_COMPRESSED_BYTES = 1024
"""Responses smaller than this are sent uncompressed (as API Gateway's MinimumCompressionSize does)."""
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_request(request: HttpRequest) -> HttpRequest:
    """The request with its body decoded per ``Content-Encoding`` (``identity``, ``gzip`` or ``deflate``)."""
    header = request.headers.get("content-encoding")
    if not header:  # most requests: nothing to decode
        return request
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    body = request.body
    for coding in reversed(codings):  # the last coding applied is listed last
        if coding == "identity":
            continue
        if coding not in _WBITS:
            raise UnsupportedMediaType(
                f"Content-Encoding {coding!r} is not supported; send the body uncompressed, gzip or deflate"
            )
        body = _inflate(body, coding)
    if body is request.body:
        return request
    headers = Headers({k: v for k, v in request.headers.items() if k != "content-encoding"})
    return replace(request, headers=headers, body=body)


def encode_response(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """The response compressed with the first of gzip/deflate the client accepts, when that is worth it."""
    if len(response.body) < MIN_COMPRESSED_BYTES:  # most answers: no header to parse
        return response
    coding = _accepted(request.headers.get("accept-encoding", ""))
    if coding is None or "Content-Encoding" in response.headers:
        return response
    if coding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    else:
        compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    body = compressor.compress(response.body) + compressor.flush()
    headers = {**response.headers, "Content-Encoding": coding, "Vary": "Accept-Encoding"}
    return HttpResponse(response.status, body, headers, binary=True)


def _inflate(body: bytes, coding: str) -> bytes:
    for wbits in (_WBITS[coding], -zlib.MAX_WBITS) if coding == "deflate" else (_WBITS[coding],):
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(body, MAX_DECODED_BYTES)
        except zlib.error as error:
            last = error
            continue
        if inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"the {coding}-compressed request body inflates to more than {MAX_DECODED_BYTES} bytes; "
                "send smaller batches"
            )
        if not inflater.eof:
            raise BadRequest(f"the {coding}-compressed request body is truncated; send the whole compressed body")
        return data
    raise BadRequest(f"the request body is not valid {coding} data ({last}); compress it with {coding} or drop Content-Encoding")


def _accepted(header: str) -> str | None:
    """gzip or deflate when the Accept-Encoding header allows it (q=0 refuses), else None."""
    accepted: dict[str, float] = {}
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().lower().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if coding:
            accepted[coding.strip().lower()] = quality
    for coding in ("gzip", "deflate"):
        if accepted.get(coding, accepted.get("*", 0.0)) > 0:
            return coding
    return None
