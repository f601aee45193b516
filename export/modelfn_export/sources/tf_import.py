"""Import TensorFlow quietly: :func:`import_tensorflow` (importing this module is free).

Example:
    >>> tf = import_tensorflow()   # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
    r"|To enable the following instructions: .*)$"
)


def import_tensorflow() -> Any:
    """Import TensorFlow without its native start-up chatter.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the caller chose a level, and, on the first import, passes
    what the native libraries write to stderr through a filter that drops absl INFO lines (oneDNN
    and CPU-feature notices) and the "before absl::InitializeLog()" banner; anything else is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    with _filtered_native_stderr():
        import tensorflow as tf
    return tf


@contextmanager
def _filtered_native_stderr() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters): import unfiltered
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            kept = [
                line
                for line in capture.read().decode("utf-8", "replace").splitlines()
                if line.strip() and not _NATIVE_NOISE.match(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr)
