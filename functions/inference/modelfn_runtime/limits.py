"""The request limits' old address: they live in ``validation`` now, next to the rules that apply them.

Kept only because ``modelfn_infra.catalog`` imports ``DEFAULT_MAX_BATCH_SIZE`` from here (the catalog is being split
into a package on another branch); new code imports ``modelfn_runtime.validation``. Nothing in the runtime imports
this module. Remove it once the catalog imports ``modelfn_runtime.validation``.

Example:
    >>> from modelfn_runtime.validation import DEFAULT_MAX_BATCH_SIZE
    >>> DEFAULT_MAX_BATCH_SIZE
    1024
"""

from __future__ import annotations

from .validation import DEFAULT_MAX_BATCH_SIZE, MAX_DIMENSION, MAX_ELEMENTS, Limits

__all__ = ["DEFAULT_MAX_BATCH_SIZE", "MAX_DIMENSION", "MAX_ELEMENTS", "Limits"]
