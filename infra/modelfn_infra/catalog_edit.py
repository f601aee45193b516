"""``modelfn catalog add NAME [--version V]``: point the catalog at an exported version, keeping its comments.

The catalog is edited as text (one entry's ``version:`` line, or a new entry appended) so its comments and
layout survive; the result is read back with ``Catalog.read``, so an edit that would not render is never
written. The version defaults to the newest one in the local model store.

Example:
    >>> change = add_model("infra/catalog.yaml", "digits", version="2")      # doctest: +SKIP
    >>> change.previous, change.entry.version                               # doctest: +SKIP
    ('1', '2')
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE

from .catalog import NAME_PATTERN, Catalog, CatalogError, ModelEntry


@dataclass(frozen=True)
class CatalogChange:
    entry: ModelEntry
    previous: str | None  # the version served before; None for a new entry, "" for an entry without one
    in_store: bool  # whether the store holds this version's model.onnx and modelcard.json


def latest_version(store: str | Path, name: str) -> str | None:
    """The highest version of ``name`` in the model store that has a card, or None."""
    directory = Path(store) / name
    versions = [int(p.name) for p in directory.glob("*") if p.name.isdigit() and (p / CARD_FILE).is_file()] if directory.is_dir() else []
    return str(max(versions)) if versions else None


def add_model(catalog_path: str | Path, name: str, version: str | None = None, store: str | Path = "models") -> CatalogChange:
    """Add ``name`` to the catalog or move its entry to ``version`` (default: the newest in ``store``)."""
    if not NAME_PATTERN.fullmatch(name):
        raise CatalogError(f"model name {name!r} must match {NAME_PATTERN.pattern} (lower-case letters, digits, dashes)")
    if version is None:
        version = latest_version(store, name)
        if version is None:
            raise CatalogError(
                f"{Path(store) / name} holds no exported version of {name!r}; run `modelfn export SOURCE --name {name}` "
                "first, or pass --version"
            )
    path = Path(catalog_path)
    text = path.read_text()
    raw = (yaml.safe_load(text) or {}).get("models") or []  # raw: an entry being fixed may not validate yet
    current = {str(m.get("name")): str(m.get("version") or "") for m in raw if isinstance(m, dict)}
    previous = current.get(name)
    if previous == version:
        updated = text
    elif previous is not None:
        updated = set_version(text, name, version)
    else:
        updated = _append_entry(text, name, version)
    updated = _gpu_model_size(updated, raw, name, Path(store) / name / version / CARD_FILE)
    entry = _check(updated, name, version)
    if updated != text:
        path.write_text(updated)
    directory = Path(store) / name / version
    return CatalogChange(entry, previous, all((directory / file).is_file() for file in (ARTIFACT_FILE, CARD_FILE)))


def set_version(text: str, name: str, version: str) -> str:
    """``text`` (the catalog) with entry ``name`` serving ``version``; comments, including one on the version line, kept."""
    return set_key(text, name, "version", f'"{version}"')


def set_key(text: str, name: str, key: str, value: str) -> str:
    r"""``text`` (the catalog) with entry ``name``'s ``key`` set to ``value`` (YAML text), every comment kept: the
    key's line is rewritten (a comment on it stays), or added under the entry's ``- name:`` line.

    Example:
        >>> set_key("models:\n  - name: digits\n    memory_mb: 1024  # why\n", "digits", "memory_mb", "2048")
        'models:\n  - name: digits\n    memory_mb: 2048  # why\n'
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if re.match(rf"^\s*-\s*name:\s*['\"]?{re.escape(name)}['\"]?\s*(#.*)?$", line)), None)
    if start is None:
        raise CatalogError(f"the catalog has no entry for {name!r}; add it with `modelfn catalog add {name}`")
    indent = len(lines[start]) - len(lines[start].lstrip(" "))
    for index in range(start + 1, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and len(line) - len(line.lstrip(" ")) <= indent:
            break  # the next entry or top-level key: this entry has no such line
        match = re.match(rf"^(\s*{re.escape(key)}:\s*)[^#\n]*?(\s*#.*)?$", line.rstrip("\n"))
        if match:
            lines[index] = f"{match.group(1)}{value}{match.group(2) or ''}\n"
            return "".join(lines)
    lines.insert(start + 1, " " * (indent + 2) + f"{key}: {value}\n")
    return "".join(lines)


def _gpu_model_size(text: str, raw: list, name: str, card: Path) -> str:
    """A GPU entry's ``model_size_mb`` follows the version it serves (the catalog estimates its GPU memory from it):
    taken from the card's ``artifact.bytes`` when the store has the card."""
    accelerated = any(isinstance(m, dict) and m.get("name") == name and m.get("accelerator") == "gpu" for m in raw)
    if not accelerated or not card.is_file():
        return text
    size = (json.loads(card.read_text()).get("artifact") or {}).get("bytes")
    return set_key(text, name, "model_size_mb", f"{size / 1e6:.1f}") if isinstance(size, int) and size > 0 else text


def _append_entry(text: str, name: str, version: str) -> str:
    if re.search(r"^models:\s*\[\s*\]\s*$", text, flags=re.M):
        text = re.sub(r"^models:\s*\[\s*\]\s*$", "models:", text, flags=re.M)
    elif not re.search(r"^models:", text, flags=re.M):
        text = text.rstrip("\n") + ("\n" if text.strip() else "") + "models:\n"
    return text.rstrip("\n") + f'\n  - name: {name}\n    version: "{version}"\n'


def _check(text: str, name: str, version: str) -> ModelEntry:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(text)
        handle.flush()
        entries = {entry.name: entry for entry in Catalog.read(handle.name).models}
    entry = entries.get(name)
    if entry is None or entry.version != version:
        raise CatalogError(f"could not edit the catalog's entry for {name!r}; set its version to {version!r} by hand")
    return entry
