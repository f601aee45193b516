"""Amounts read from price files: ``Decimal``, finite, non-negative, or an error that names the field.

Example:
    >>> non_negative("0.20", "units.lambda_request")
    Decimal('0.20')
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def non_negative(value: Any, where: str, error: type[Exception] = ValueError) -> Decimal:
    """``value`` as a Decimal; ``error`` naming ``where`` when it is not a non-negative number."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise error(f"{where} must be a number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise error(f"{where} must be a non-negative number, not {value!r}")
    return number
