"""A worker's local read-through cache in front of the S3 store.

Cached bytes live in files named by their SHA-256 (`blobs/<sha256>`); `keys/<key>` holds the
SHA-256 last seen for a key. Before a cached file is used, one HEAD asks the store whether the
key still exists with that SHA-256: a file whose object was purged, or replaced, is never
trusted and is removed on sight. `sweep()` removes every entry whose object is gone, so a purge
reaches the copies of a worker that never reads the key again. The least recently used files go
first when the cache outgrows its size limit. Safe for the processes of one worker to share.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import structlog

from workers.engine.artifacts import ObjectVersion, validate_key, write_atomically
from workers.store.s3 import S3ArtifactStore, sha256_hex

log = structlog.get_logger(__name__)


class CachedArtifactStore:
    """`store` with a local copy of what this worker read or wrote, up to `max_bytes`."""

    def __init__(self, *, store: S3ArtifactStore, root: str | Path, max_bytes: int) -> None:
        self.store = store
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.blobs = self.root / "blobs"
        self.entries = self.root / "keys"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.entries.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"CachedArtifactStore({self.store!r})"

    @property
    def location(self) -> str:
        return self.store.location

    def _entry(self, key: str) -> Path:
        return self.entries.joinpath(*validate_key(key).split("/"))

    def _cached_digest(self, key: str) -> str | None:
        try:
            return self._entry(key).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _forget(self, key: str) -> bool:
        """Remove the local copy of `key`; True when there was one."""
        digest = self._cached_digest(key)
        self._entry(key).unlink(missing_ok=True)
        if digest is None:
            return False
        blob = self.blobs / digest
        existed = blob.exists()
        blob.unlink(missing_ok=True)
        return existed

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        digest = sha256_hex(data)
        blob = self.blobs / digest
        if blob.exists():
            os.utime(blob)
        else:
            write_atomically(blob, data)
        write_atomically(self._entry(key), digest.encode())
        self._evict_to_limit()

    def _evict_to_limit(self) -> None:
        """Least recently used first (a use touches the file's modification time)."""
        files = []
        for blob in self.blobs.iterdir():
            try:
                stat = blob.stat()
            except FileNotFoundError:
                continue
            if not blob.name.startswith(".tmp-"):
                files.append((stat.st_mtime, stat.st_size, blob))
        total = sum(size for _, size, _ in files)
        for _, size, blob in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            blob.unlink(missing_ok=True)
            total -= size

    def _read_cached(self, digest: str) -> bytes | None:
        blob = self.blobs / digest
        try:
            data = blob.read_bytes()
        except FileNotFoundError:
            return None
        if sha256_hex(data) != digest:  # a damaged copy: fetch again
            blob.unlink(missing_ok=True)
            return None
        os.utime(blob)
        return data

    def put(self, *, key: str, data: bytes) -> None:
        self.store.put(key=key, data=data)
        self._remember(key, data)

    def get(self, *, key: str) -> bytes:
        current = self.store.sha256(key=key)
        if current is None:
            self._forget(key)
            raise KeyError(key)
        if self._cached_digest(key) == current:
            data = self._read_cached(current)
            if data is not None:
                return data
        else:
            self._forget(key)
        data = self.store.get(key=key)
        self._remember(key, data)
        return data

    def exists(self, *, key: str) -> bool:
        return self.store.exists(key=key)

    def list(self, *, prefix: str = "") -> list[str]:
        return self.store.list(prefix=prefix)

    def list_versions(self, *, prefix: str = "") -> builtins.list[ObjectVersion]:
        return self.store.list_versions(prefix=prefix)

    def purge(self, *, key: str) -> int:
        removed = self.store.purge(key=key)
        self._forget(key)
        return removed

    def delete(self, *, key: str) -> bool:
        return self.purge(key=key) > 0

    def evict(self, *, keys: builtins.list[str]) -> int:
        """Drop the local copies of `keys` (the store is not touched); returns how many."""
        return sum(self._forget(key) for key in keys)

    def cached_keys(self) -> builtins.list[str]:
        return sorted(
            path.relative_to(self.entries).as_posix()
            for path in self.entries.rglob("*")
            if path.is_file() and not path.name.startswith(".tmp-")
        )

    def sweep(self) -> int:
        """Remove every entry whose object is gone or changed, and every file no entry names;
        returns how many entries were removed."""
        removed = 0
        kept: set[str] = set()
        for key in self.cached_keys():
            digest = self._cached_digest(key)
            if digest is not None and self.store.sha256(key=key) == digest:
                kept.add(digest)
                continue
            self._forget(key)
            removed += 1
        for blob in self.blobs.iterdir():
            if blob.name not in kept and not blob.name.startswith(".tmp-"):
                blob.unlink(missing_ok=True)
        if removed:
            log.info("artifact_cache_swept", removed=removed)
        return removed
