"""``modelfn tune --write``: set one model's ``memory_mb`` in the catalog, keeping its comments, and re-render
the template.

The catalog is edited as text with ``catalog_edit.set_key``, the way ``modelfn catalog add`` moves a version: only the entry's ``memory_mb:``
line changes (a comment on that line stays), or one is added under the entry's ``- name:`` line; the result
is read back with ``Catalog.read`` first, so an edit that would not render is never written.

Example:
    >>> previous = set_memory("infra/catalog.yaml", "template.yaml", "digits", 2048)   # doctest: +SKIP
    >>> previous                                                                       # doctest: +SKIP
    1024
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..catalog import Catalog, CatalogError, rendered
from ..catalog_edit import set_key


def set_memory(catalog_path: str | Path, template_path: str | Path | None, name: str, memory_mb: int) -> int:
    """Write ``memory_mb`` for ``name`` into the catalog and (unless ``template_path`` is None) re-render the
    template; returns the previous memory size."""
    path = Path(catalog_path)
    text = path.read_text()
    entries = {entry.name: entry for entry in Catalog.read(path).models}
    if name not in entries:
        raise CatalogError(f"{path} has no entry for {name!r}; add it with `modelfn catalog add {name}` first")
    updated = set_key(text, name, "memory_mb", str(int(memory_mb)))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        handle.write(updated)
        handle.flush()
        checked = {entry.name: entry for entry in Catalog.read(handle.name).models}
    if checked[name].memory_mb != memory_mb:
        raise CatalogError(f"could not set memory_mb of {name!r} in {path}; set it to {memory_mb} by hand")
    path.write_text(updated)
    if template_path is not None:
        Path(template_path).write_text(rendered(path))
    return entries[name].memory_mb
