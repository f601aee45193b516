"""A small runner for a pipeline of named, typed steps (it knows nothing about exports).

A :class:`Step` is a name and a function whose parameters and return value are annotated with
types. The runner keeps one value per type (the *board*): it starts with the seeds, calls each step
with the values its parameter types name, and puts what the step returns on the board under the
step's return type (replacing an earlier value of that type, so a step can refine one: ``Converted
-> Converted``). A parameter typed ``X | None`` is optional. A step whose required input was not
produced in this run is skipped (a step that returns ``None`` adds nothing: the quantize step
returns nothing for ``--quantize none``, so the steps that need a ``Quantized`` do not run).

Wiring is checked when the :class:`Pipeline` is built, not halfway through an export: every
required parameter type must be a seed or the return type of an earlier step.

Every run gets a fresh :class:`contextlib.ExitStack` on the board: a step that creates something
to undo enters it there (``cleanup.enter_context(...)``), and the runner unwinds it when the run
ends, whether it succeeded or raised. An unexpected exception leaving a step gets a note naming the
step (the pipeline's ``expected`` errors, those a user acts on, are left as they are).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Text:
    ...     value: str
    >>> @dataclass
    ... class Length:
    ...     value: int
    >>> def measure(text: Text) -> Length:
    ...     return Length(len(text.value))
    >>> pipeline = Pipeline([Step("measure", measure)], seeds=[Text])
    >>> pipeline.run(Text("four"), result=Length)
    Length(value=4)
    >>> pipeline.insert(Step("shout", lambda: None), before="measure").names
    ['shout', 'measure']
"""

from __future__ import annotations

import inspect
import logging
import time
import types
import typing
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("modelfn_export.pipeline")


class PipelineError(ValueError):
    """A pipeline whose steps are not wired (a bug in the code that builds it, not the user's input)."""


@dataclass(frozen=True)
class Step:
    """One named step: ``run``'s annotated parameters are its inputs, its annotated return its output."""

    name: str
    run: Callable[..., Any]


@dataclass(frozen=True)
class _Plan:
    step: Step
    required: dict[str, type]
    optional: dict[str, type]
    output: type | None


def _plan(step: Step) -> _Plan:
    """Read a step's inputs and output from its annotations."""
    try:
        hints = typing.get_type_hints(step.run)
    except Exception as exc:  # noqa: BLE001 - a NameError in an annotation, most often
        raise PipelineError(f"step '{step.name}': cannot read its type annotations ({exc})") from None
    output = _unwrap_optional(hints.pop("return", None))[0]
    unannotated = [name for name in inspect.signature(step.run).parameters if name not in hints]
    if unannotated:
        raise PipelineError(f"step '{step.name}': parameter '{unannotated[0]}' has no type annotation (the runner passes values by type)")
    required, optional = {}, {}
    for name, hint in hints.items():
        kind, is_optional = _unwrap_optional(hint)
        if not isinstance(kind, type):
            raise PipelineError(f"step '{step.name}': parameter '{name}' must be annotated with a class, not {hint!r}")
        (optional if is_optional else required)[name] = kind
    if output is type(None):
        output = None
    return _Plan(step, required, optional, output)


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` (or ``Optional[X]``) -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


class Pipeline:
    """An ordered, checked sequence of :class:`Step` objects; immutable (editing returns a new one).

    Args:
        steps: the steps, in order; names must be unique.
        seeds: the types of the values :meth:`run` is given (an ``ExitStack`` is always there).
        expected: exception types that are answers, not bugs: they leave a step without a note.

    Raises:
        PipelineError: duplicate names, or a step needing a type no seed or earlier step provides.
    """

    def __init__(
        self, steps: Iterable[Step], *, seeds: Iterable[type], expected: tuple[type[BaseException], ...] = ()
    ) -> None:
        self.steps = tuple(steps)
        self.seeds = tuple(dict.fromkeys([*seeds, ExitStack]))
        self.expected = expected
        self._plans = tuple(_plan(step) for step in self.steps)
        self._check()

    @property
    def names(self) -> list[str]:
        """The step names, in order."""
        return [step.name for step in self.steps]

    def _check(self) -> None:
        seen: set[str] = set()
        available = set(self.seeds)
        for plan in self._plans:
            name = plan.step.name
            if name in seen:
                raise PipelineError(f"two steps are named '{name}': give each step a unique name")
            seen.add(name)
            for param, kind in plan.required.items():
                if kind not in available:
                    raise PipelineError(
                        f"step '{name}' needs {kind.__name__} ('{param}'), which no seed or earlier step provides: "
                        f"add a step that returns {kind.__name__} before '{name}', or type the parameter "
                        f"{kind.__name__} | None"
                    )
            if plan.output is not None:
                available.add(plan.output)

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise PipelineError(f"no step named '{name}': the steps are {', '.join(self.names)}")
        return self.names.index(name)

    def insert(self, step: Step, *, before: str | None = None, after: str | None = None) -> Pipeline:
        """A copy with ``step`` inserted before or after the step named ``before``/``after`` (at the end without either)."""
        if before is not None and after is not None:
            raise PipelineError("pass before= or after=, not both")
        steps = list(self.steps)
        position = self._index(before) if before is not None else (
            self._index(after) + 1 if after is not None else len(steps)
        )
        steps.insert(position, step)
        return Pipeline(steps, seeds=self.seeds, expected=self.expected)

    def replace(self, name: str, step: Step) -> Pipeline:
        """A copy with the step named ``name`` replaced by ``step``."""
        steps = list(self.steps)
        steps[self._index(name)] = step
        return Pipeline(steps, seeds=self.seeds, expected=self.expected)

    def without(self, name: str) -> Pipeline:
        """A copy without the step named ``name``."""
        steps = list(self.steps)
        del steps[self._index(name)]
        return Pipeline(steps, seeds=self.seeds, expected=self.expected)

    def run(self, *seeds: Any, result: type[T]) -> T:
        """Run every step on ``seeds`` (one value per seed type) and return the value of type ``result``.

        Raises:
            PipelineError: a seed is missing, or no step produced ``result``.
            Exception: whatever a step raises, after the run's cleanups have run.
        """
        board: dict[type, Any] = {type(value): value for value in seeds}
        missing = [kind.__name__ for kind in self.seeds if kind not in board and kind is not ExitStack]
        if missing:
            raise PipelineError(f"run() needs a value of each seed type; missing: {', '.join(missing)}")
        with ExitStack() as cleanup:
            board[ExitStack] = cleanup
            for plan in self._plans:
                self._run_step(plan, board, self.expected)
        if result not in board:
            raise PipelineError(f"no step produced {result.__name__}: the steps are {', '.join(self.names)}")
        return board[result]

    @staticmethod
    def _run_step(plan: _Plan, board: dict[type, Any], expected: tuple[type[BaseException], ...]) -> None:
        name = plan.step.name
        if any(kind not in board for kind in plan.required.values()):
            logger.debug("step %s skipped: an input was not produced in this run", name)
            return
        arguments = {param: board[kind] for param, kind in plan.required.items()}
        arguments.update({param: board.get(kind) for param, kind in plan.optional.items()})
        started = time.perf_counter()
        try:
            value = plan.step.run(**arguments)
        except expected:
            raise
        except Exception as exc:
            exc.add_note(f"(raised in pipeline step '{name}')")
            raise
        logger.debug("step %s done in %.3fs", name, time.perf_counter() - started)
        if value is not None and plan.output is not None:
            board[plan.output] = value
