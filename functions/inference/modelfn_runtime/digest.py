"""sha256 of files and streams: the one helper the runtime, the export pipeline and ``modelfn push`` share.

Example:
    >>> import io
    >>> sha256_stream(io.BytesIO(b"abc"))[:12]
    'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def sha256_stream(stream: BinaryIO) -> str:
    """Hex sha256 of everything ``stream`` still holds, read in 1 MiB chunks (any object with ``read(n)``)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file at ``path``, streamed (a model is never held in memory twice)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
