"""Catalog keys, their types and value rules, all derived from the records' dataclass fields (one source).

A catalog record (``ModelEntry``, ``UsagePlanEntry``, the ``Catalog`` itself) is a frozen dataclass whose fields are
its YAML keys: a new field is a known key at once, with its type checked from its annotation. ``setting()`` adds a
value rule to a field (a range, a set of choices) and, where the YAML key differs from the field name, that key.
``read_record`` turns YAML into a record and refuses, with a ``CatalogError`` that names the key and the fix:

* an unknown key, naming the closest known key (``difflib``) and every known one;
* a missing required key;
* a value of the wrong type (``memory_mb: "big"``) or outside its rule.

A field typed ``list[Record]`` is a section of entries (``models:``), read entry by entry, each name once; a field
typed ``Record`` or ``Record | None`` is a section that is one mapping (``auth:``), read the same way.

A record's class names itself in messages with ``LABEL`` (``catalog entry``) and, for duplicates, ``NOUN`` (``model``).

Example:
    >>> @dataclass(frozen=True)
    ... class Tier:
    ...     name: str
    ...     burst: int = setting(5, between=(1, 100))
    >>> read_record(Tier, {"name": "free", "brust": 3}, "tier 'free'")
    Traceback (most recent call last):
    ...
    modelfn_infra.catalog.fields.CatalogError: tier 'free': unknown key 'brust'; did you mean 'burst'? known keys: name, burst
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import MISSING, Field, dataclass
from typing import Any, TypeVar

__all__ = ["CatalogError", "Rule", "setting", "yaml_key", "known_keys", "read_record", "check_fields"]

T = TypeVar("T")
KEY = "modelfn.key"
RULE = "modelfn.rule"


class CatalogError(ValueError):
    """The catalog cannot be rendered; the message names the entry and the fix."""


@dataclass(frozen=True)
class Rule:
    """What a field's value may be beyond its type: ``between`` (inclusive), ``choices``; ``note`` ends the message.
    ``text``: an integer is taken as its text (YAML reads ``version: 1`` as a number)."""

    between: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    note: str = ""
    text: bool = False

    def check(self, where: str, key: str, value: Any) -> None:
        tail = f" {self.note}" if self.note else ""
        if value is None:
            return
        if self.between is not None and not self.between[0] <= value <= self.between[1]:
            raise CatalogError(f"{where}: {key} must be between {self.between[0]} and {self.between[1]}{tail}")
        if self.choices is not None and value not in self.choices:
            raise CatalogError(f"{where}: {key} must be one of {', '.join(self.choices)}{tail}")


def setting(default: Any = MISSING, *, key: str | None = None, factory: Any = MISSING, between: tuple[float, float] | None = None,
            choices: tuple[str, ...] | None = None, note: str = "", text: bool = False) -> Any:
    """A dataclass field with a value rule (and its YAML ``key`` where that is not the field name).

    Example:
        >>> f = setting(1024, between=(128, 10240))      # memory_mb: int = setting(1024, between=(128, 10240))
    """
    metadata: dict[str, Any] = {RULE: Rule(between, choices, note, text)}
    if key is not None:
        metadata[KEY] = key
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def yaml_key(item: Field) -> str:
    return item.metadata.get(KEY, item.name)


def known_keys(cls: type) -> list[str]:
    """The YAML keys a record accepts, in field order."""
    return [yaml_key(item) for item in dataclasses.fields(cls)]


def read_record(cls: type[T], raw: Any, where: str) -> T:
    """``raw`` (parsed YAML) as a validated ``cls``: keys checked, lists of records read entry by entry, then
    ``validate()`` (or the field checks alone, for a record without one)."""
    known = known_keys(cls)
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be a mapping of keys ({', '.join(known)}), not {_shown(raw)}")
    for key in raw:
        if key not in known:
            raise CatalogError(_unknown(where, key, known))
    required = [yaml_key(item) for item in dataclasses.fields(cls) if _required(item)]
    missing = [key for key in required if key not in raw]
    if missing:
        raise CatalogError(f"{where}: missing key {missing[0]!r} (required keys: {', '.join(required)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        key = yaml_key(item)
        if key in raw:
            values[item.name] = _value(item, hints[item.name], raw[key], where)
    record = cls(**values)
    validate = getattr(record, "validate", None)
    if callable(validate):
        validate()
    else:
        check_fields(record)
    return record


def check_fields(record: Any) -> None:
    """Every plain field of ``record`` against its type and rule (records call this first in ``validate()``)."""
    where = record.where
    hints = typing.get_type_hints(type(record))
    for item in dataclasses.fields(record):
        key, value, hint = yaml_key(item), getattr(record, item.name), hints[item.name]
        if _record_type(hint) is not None:
            continue  # a section of records: checked entry by entry when read
        expected = _expected(hint, item)
        if expected is not None and not _matches(value, hint):
            raise CatalogError(f"{where}: {key} must be {expected}; got {_shown(value)}")
        rule = item.metadata.get(RULE)
        if rule is not None:
            rule.check(where, key, value)


def _value(item: Field, hint: Any, raw: Any, where: str) -> Any:
    """One key's value as the field holds it: text for ``text`` fields, records for a section of records."""
    rule = item.metadata.get(RULE)
    if rule is not None and rule.text and isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    entry_cls = _record_type(hint)
    if entry_cls is None:
        return raw
    if raw is None:
        return item.default_factory() if item.default_factory is not MISSING else item.default
    if typing.get_origin(hint) is not list:  # a section that is one mapping (e.g. auth:)
        return read_record(entry_cls, raw, f"{where}: section {yaml_key(item)!r}")
    if not isinstance(raw, list):
        raise CatalogError(f"{where}: {yaml_key(item)} must be a list of entries (- name: ...), not {_shown(raw)}")
    entries = [read_record(entry_cls, entry, _entry_where(entry_cls, entry, index)) for index, entry in enumerate(raw)]
    names = [getattr(entry, "name", None) for entry in entries]
    duplicates = sorted({name for name in names if name is not None and names.count(name) > 1})
    if duplicates:
        noun = getattr(entry_cls, "NOUN", "entry")
        raise CatalogError(f"{where}: {noun}s {duplicates} appear twice; keep one entry per {noun}")
    return entries


def _entry_where(cls: type, raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    label = getattr(cls, "LABEL", cls.__name__)
    return f"{label} {name!r}" if name is not None else f"{label} #{index + 1}"


def _unknown(where: str, key: Any, known: list[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"{where}: unknown key {key!r}{hint} known keys: {', '.join(known)}"


def _required(item: Field) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


def _record_type(hint: Any) -> type | None:
    """``X`` for a field typed ``list[X]``, ``X`` or ``X | None`` where X is a dataclass (a section), else None."""
    if typing.get_origin(hint) is list:
        (inner,) = typing.get_args(hint) or (None,)
        return inner if dataclasses.is_dataclass(inner) else None
    allowed, _ = _parts(hint)
    if len(allowed) == 1 and isinstance(allowed[0], type) and dataclasses.is_dataclass(allowed[0]):
        return allowed[0]
    return None


_NAMES: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def _parts(hint: Any) -> tuple[list[type], bool]:
    """The plain types a hint allows and whether it allows None (``int | None``)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def _expected(hint: Any, item: Field) -> str | None:
    """``an integer such as 1024``; None for a type this module does not check."""
    allowed, optional = _parts(hint)
    if not allowed or any(t not in _NAMES for t in allowed):
        return None
    words = " or ".join(_NAMES[t] for t in allowed)
    rule = item.metadata.get(RULE)
    if rule is not None and rule.text:
        words = "text or an integer"
    default = item.default
    if default not in (MISSING, None, "") and bool not in allowed and _matches(default, hint):
        words += f" such as {default!r}" if isinstance(default, str) else f" such as {default}"
    return words + (", or null" if optional else "")


def _matches(value: Any, hint: Any) -> bool:
    allowed, optional = _parts(hint)
    if value is None:
        return optional
    for expected in allowed:
        if expected is bool and isinstance(value, bool):
            return True
        if expected is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if expected is str and isinstance(value, str):
            return True
    return False


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
