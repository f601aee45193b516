"""The one error type of the export side.

Every failure a user can act on is an :class:`ExportError` whose message is ONE line naming the
problem and the fix, separated by an em dash. ``exit_code`` is what the CLI exits with: 2 for bad
input or usage (wrong name, missing source, bad opset, ...), 1 for a step that ran and failed
(conversion, parity, quantization agreement, a refused push).

Example:
    >>> err = ExportError("opset 9 is not supported", "use 13–18 (default 17)")
    >>> str(err)
    'opset 9 is not supported — use 13–18 (default 17)'
    >>> err.exit_code
    2
"""

from __future__ import annotations

BAD_INPUT = 2
"""Exit code for usage errors and invalid input."""

FAILED = 1
"""Exit code for a step that ran and failed (conversion, parity, quantization, push conflict)."""


def one_line(text: object) -> str:
    """Collapse any whitespace runs (newlines included) so a message always fits on one line."""
    return " ".join(str(text).split())


class ExportError(Exception):
    """A failure of ``export``/``push`` with a one-line ``<problem> — <fix>`` message.

    Args:
        problem: what went wrong, e.g. ``"source 'x.keras' does not exist"``.
        fix: how to fix it, e.g. ``"pass a .keras file, a SavedModel directory, or package.module:function"``.
        exit_code: :data:`BAD_INPUT` (2, the default) or :data:`FAILED` (1).
    """

    def __init__(self, problem: str, fix: str | None = None, *, exit_code: int = BAD_INPUT) -> None:
        self.problem = one_line(problem)
        self.fix = one_line(fix) if fix else None
        self.exit_code = exit_code
        super().__init__(f"{self.problem} — {self.fix}" if self.fix else self.problem)
