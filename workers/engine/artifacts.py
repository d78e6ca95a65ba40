"""Artifact storage: named blobs of bytes.

`ArtifactStore` is the interface; `LocalArtifactStore` keeps blobs as files under a directory,
`workers.store.s3.S3ArtifactStore` as objects in a versioned bucket. This module
imports no torch, so the API layer can use it to purge artifacts.
"""

from __future__ import annotations

import builtins
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class ObjectVersion:
    """One stored version of a blob, or (in a versioned bucket) one delete marker."""

    key: str
    version_id: str
    is_delete_marker: bool = False


@runtime_checkable
class ArtifactStore(Protocol):
    """Blobs addressed by `/`-separated keys such as `sisa/checkpoints/ab12.pt`."""

    def put(self, *, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any blob already there."""
        ...

    def get(self, *, key: str) -> bytes:
        """The blob under `key`; KeyError when there is none."""
        ...

    @property
    def location(self) -> str:
        """The store as a certificate names it: `local` or `s3://bucket/prefix`."""
        ...

    def delete(self, *, key: str) -> bool:
        """Remove the blob; False when there was none."""
        ...

    def purge(self, *, key: str) -> int:
        """Remove every stored version of the blob; returns how many were removed."""
        ...

    def list_versions(self, *, prefix: str = "") -> builtins.list[ObjectVersion]:
        """Every stored version under `prefix`, those hidden by a newer one included."""
        ...

    def list(self, *, prefix: str = "") -> list[str]:
        """Every key that starts with `prefix`, sorted."""
        ...

    def exists(self, *, key: str) -> bool:
        """Whether a blob is stored under `key`."""
        ...


def validate_key(key: str) -> str:
    """Keys are relative paths of plain segments: no `..`, no leading `/`, no empty segment."""
    if not _KEY_PATTERN.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"invalid artifact key {key!r}")
    return key


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so that a reader never
    sees half a file (temporary files start with `.tmp-`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LocalArtifactStore:
    """Blobs as files under `root`; writes are atomic (temporary file, then rename)."""

    def __init__(self, *, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put(self, *, key: str, data: bytes) -> None:
        write_atomically(self._path(key), data)

    def get(self, *, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    @property
    def location(self) -> str:
        return "local"

    def delete(self, *, key: str) -> bool:
        return self.purge(key=key) > 0

    def purge(self, *, key: str) -> int:
        """A file has one version: the rename that replaced it freed the one before."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return 0
        return 1

    def list_versions(self, *, prefix: str = "") -> builtins.list[ObjectVersion]:
        return [ObjectVersion(key=key, version_id="null") for key in self.list(prefix=prefix)]

    def list(self, *, prefix: str = "") -> list[str]:
        folders = prefix.split("/")[:-1]
        if any(part in {"", ".", ".."} for part in folders):
            folders = []
        # Only the folder the prefix names is walked, not the whole store.
        base = self.root.joinpath(*folders)
        keys = (
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def exists(self, *, key: str) -> bool:
        return self._path(key).is_file()
