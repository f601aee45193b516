"""The local model store: ``<out>/<name>/<version>/{model.onnx, modelcard.json}``.

* ``name`` matches ``^[a-z0-9][a-z0-9-]{0,62}$``: it becomes a URL path segment and part of a
  CloudFormation logical id.
* ``version`` is a positive integer (as a string). Without an explicit version the next one is
  ``max(existing integer versions) + 1``, starting at 1. An existing version is never overwritten.
* Writes are atomic: everything is built in ``<out>/<name>/.tmp-<uuid>/`` and moved into place with
  one ``os.rename``; on any failure the temporary directory (and any store directories this export
  created that are left empty) are removed, so a partial version directory never exists.

Example:
    >>> with Staging("models", "digits") as stage:       # doctest: +SKIP
    ...     (stage.path / "model.onnx").write_bytes(data)
    ...     final = stage.commit("1")
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from types import TracebackType

from modelfn_runtime.modelcard import ARTIFACT_FILE, CARD_FILE, NAME_PATTERN, VERSION_PATTERN

from .errors import FAILED, ExportError

TEMP_PREFIX = ".tmp-"


def validate_name(name: str) -> str:
    """Return ``name`` if valid, else raise :class:`ExportError` with the fix."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:63] or "my-model"
        raise ExportError(
            f"model name '{name}' is invalid",
            f"use 1–63 lowercase letters, digits and '-', starting with a letter or digit (e.g. '{suggestion}')",
        )
    return name


def validate_version(version: str | int) -> str:
    """Return ``version`` as a string if it is a positive integer, else raise :class:`ExportError`."""
    text = str(version)
    if isinstance(version, bool) or not VERSION_PATTERN.fullmatch(text):
        raise ExportError(f"version '{version}' is invalid", "use a positive integer such as 1, 2, 3")
    return text


def versions(store: str | os.PathLike[str], name: str) -> list[int]:
    """The integer versions present for ``name`` in the store, ascending."""
    model_dir = Path(store) / name
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and VERSION_PATTERN.fullmatch(p.name))


def next_version(store: str | os.PathLike[str], name: str) -> str:
    """``max(existing) + 1``, or ``"1"``."""
    existing = versions(store, name)
    return str(existing[-1] + 1 if existing else 1)


def latest_version(store: str | os.PathLike[str], name: str) -> str:
    """The highest version of ``name`` in the store, or :class:`ExportError` if there is none."""
    existing = versions(store, name)
    if not existing:
        raise ExportError(
            f"model '{name}' has no versions in store '{store}'",
            f"export it first (modelfn export SOURCE --name {name} --out {store}) or pass --store",
        )
    return str(existing[-1])


def version_dir(store: str | os.PathLike[str], name: str, version: str) -> Path:
    """``<store>/<name>/<version>``, which must hold both files, else :class:`ExportError`."""
    path = Path(store) / name / version
    if not (path / ARTIFACT_FILE).is_file() or not (path / CARD_FILE).is_file():
        raise ExportError(
            f"'{path}' does not hold {ARTIFACT_FILE} and {CARD_FILE}",
            "pass NAME/VERSION of an exported model (see the store directory) or --store",
        )
    return path


def check_version_free(store: str | os.PathLike[str], name: str, version: str) -> None:
    """Raise :class:`ExportError` if ``<store>/<name>/<version>`` already exists."""
    path = Path(store) / name / version
    if path.exists():
        raise ExportError(
            f"version {version} of '{name}' already exists at '{path}'",
            "pick another --version, omit --version to use the next one, or delete that directory",
        )


class Staging:
    """A temporary directory inside ``<store>/<name>/`` that is renamed into place by :meth:`commit`.

    Used as a context manager: leaving the block without a successful commit removes the temporary
    directory and the store directories it created (if they are empty).
    """

    def __init__(self, store: str | os.PathLike[str], name: str) -> None:
        self.store = Path(store)
        self.name = name
        self.model_dir = self.store / name
        self.path = self.model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        self._created: list[Path] = []
        self.committed: Path | None = None

    def __enter__(self) -> "Staging":
        missing = []
        directory = self.model_dir.absolute()
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            self._created.append(directory)
        self.path.mkdir()
        return self

    def commit(self, version: str, keep: tuple[str, ...] = (ARTIFACT_FILE, CARD_FILE)) -> Path:
        """Remove everything but ``keep`` from the staging dir and rename it to ``<version>``."""
        for entry in self.path.iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        target = self.model_dir / version
        if target.exists():
            raise ExportError(
                f"version {version} of '{self.name}' was created by another export while this one ran",
                "run the export again",
                exit_code=FAILED,
            )
        os.rename(self.path, target)
        self.committed = target
        return target

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.committed is None:
            shutil.rmtree(self.path, ignore_errors=True)
            for directory in reversed(self._created):
                try:
                    directory.rmdir()
                except OSError:
                    pass
