"""One contract for every artifact store: the local directory, the S3 bucket, and the S3 bucket
behind a worker's cache; then what only the bucket and the cache do (integrity, every version
purged, multipart uploads, a cache that never trusts a purged object)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_server import client, s3_server, versioned_bucket
from workers.engine.artifacts import ArtifactStore, LocalArtifactStore
from workers.store.cache import CachedArtifactStore
from workers.store.s3 import (
    SHA256_METADATA,
    ArtifactIntegrityError,
    S3ArtifactStore,
    sha256_hex,
)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture(scope="module")
def bucket(endpoint: str) -> str:
    return versioned_bucket(endpoint, "lethe-artifacts")


def _s3(endpoint: str, bucket: str, *, threshold: int = 8 * MIB) -> S3ArtifactStore:
    """A store under a prefix of its own, so tests share the bucket without seeing each other."""
    return S3ArtifactStore(
        client=client(endpoint),
        bucket=bucket,
        prefix=f"tests/{uuid.uuid4().hex}",
        multipart_threshold=threshold,
    )


@pytest.fixture(params=["local", "s3", "cached"])
def store(request, tmp_path: Path, endpoint: str, bucket: str) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(root=tmp_path / "artifacts")
    if request.param == "s3":
        return _s3(endpoint, bucket)
    return CachedArtifactStore(store=_s3(endpoint, bucket), root=tmp_path / "cache", max_bytes=MIB)


def test_put_get_list_exists_delete(store: ArtifactStore):
    assert isinstance(store, ArtifactStore)
    store.put(key="models/a/weights/1.pt", data=b"one")
    store.put(key="models/a/weights/2.pt", data=b"two")
    store.put(key="models/b/records/1.npy", data=b"ids")
    assert store.get(key="models/a/weights/1.pt") == b"one"
    assert store.list(prefix="models/a/") == ["models/a/weights/1.pt", "models/a/weights/2.pt"]
    assert len(store.list()) == 3
    assert store.exists(key="models/a/weights/2.pt")
    assert not store.exists(key="models/a/weights/3.pt")
    with pytest.raises(KeyError):
        store.get(key="models/a/weights/3.pt")
    assert store.delete(key="models/a/weights/1.pt") is True
    assert store.delete(key="models/a/weights/1.pt") is False
    assert not store.exists(key="models/a/weights/1.pt")
    assert store.list(prefix="models/a/") == ["models/a/weights/2.pt"]
    with pytest.raises(ValueError):
        store.put(key="../outside", data=b"x")


def test_overwrite_then_delete_leaves_no_version(store: ArtifactStore):
    key = "models/a/sisa/checkpoints/k.pt"
    store.put(key=key, data=b"first")
    store.put(key=key, data=b"second")
    store.put(key=f"{key}.json", data=b"a neighbour whose name starts with the key")
    assert store.get(key=key) == b"second"
    assert store.purge(key=key) >= 1
    assert [v.key for v in store.list_versions(prefix="models/")] == [f"{key}.json"]
    assert store.purge(key=key) == 0


def test_every_version_and_delete_marker_is_purged(endpoint: str, bucket: str):
    s3 = _s3(endpoint, bucket)
    key = "models/a/weights/v.pt"
    s3.put(key=key, data=b"first")
    s3.put(key=key, data=b"second")
    # A plain DELETE, as any other client would send: only a marker hides the two versions.
    s3.client.delete_object(Bucket=bucket, Key=f"{s3.prefix}{key}")
    assert not s3.exists(key=key)
    versions = s3.list_versions(prefix=key)
    assert sorted(v.is_delete_marker for v in versions) == [False, False, True]
    assert s3.purge(key=key) == 3
    assert s3.list_versions(prefix="") == []


def test_a_changed_object_is_refused_not_returned(endpoint: str, bucket: str):
    s3 = _s3(endpoint, bucket)
    key = "models/a/weights/w.pt"
    s3.put(key=key, data=b"the weights")
    head = s3.client.head_object(Bucket=bucket, Key=f"{s3.prefix}{key}")
    assert head["Metadata"][SHA256_METADATA] == sha256_hex(b"the weights")
    # Different bytes behind the store's back, with the metadata of the old ones.
    s3.client.put_object(
        Bucket=bucket,
        Key=f"{s3.prefix}{key}",
        Body=b"other bytes",
        Metadata={SHA256_METADATA: sha256_hex(b"the weights")},
    )
    with pytest.raises(ArtifactIntegrityError) as refused:
        s3.get(key=key)
    assert "SHA-256" in str(refused.value) and "other bytes" not in str(refused.value)


def test_large_objects_are_uploaded_in_parts(endpoint: str, bucket: str):
    s3 = _s3(endpoint, bucket, threshold=MIB)
    key = "models/a/weights/large.pt"
    data = bytes(range(256)) * (2 * MIB // 256) + b"tail"
    s3.put(key=key, data=data)
    head = s3.client.head_object(Bucket=bucket, Key=f"{s3.prefix}{key}")
    _, dash, parts = head["ETag"].strip('"').rpartition("-")
    assert dash and parts.isdigit()  # `<md5>-<parts>`: a multipart upload
    assert s3.get(key=key) == data
    assert s3.purge(key=key) == 1


def test_the_secret_key_is_in_no_representation(endpoint: str, bucket: str, tmp_path: Path):
    from tests.s3_server import SECRET_ACCESS_KEY

    s3 = _s3(endpoint, bucket)
    cached = CachedArtifactStore(store=s3, root=tmp_path, max_bytes=MIB)
    for text in (repr(s3), repr(cached), s3.location):
        assert SECRET_ACCESS_KEY not in text


def _cached(endpoint: str, bucket: str, root: Path, *, max_bytes: int = MIB) -> CachedArtifactStore:
    return CachedArtifactStore(store=_s3(endpoint, bucket), root=root, max_bytes=max_bytes)


def test_the_cache_serves_a_hit_without_downloading(endpoint: str, bucket: str, tmp_path: Path):
    cache = _cached(endpoint, bucket, tmp_path)
    cache.store.put(key="a/b.pt", data=b"bytes")
    assert cache.get(key="a/b.pt") == b"bytes"
    assert (tmp_path / "blobs" / sha256_hex(b"bytes")).read_bytes() == b"bytes"
    downloads = []
    original = cache.store.get
    cache.store.get = lambda *, key: downloads.append(key) or original(key=key)  # type: ignore[method-assign]
    assert cache.get(key="a/b.pt") == b"bytes"
    assert downloads == []
    cache.store.put(key="a/b.pt", data=b"newer")  # replaced elsewhere: the HEAD sees it
    assert cache.get(key="a/b.pt") == b"newer"
    assert downloads == ["a/b.pt"]


def test_the_cache_evicts_the_least_recently_used(endpoint: str, bucket: str, tmp_path: Path):
    cache = _cached(endpoint, bucket, tmp_path, max_bytes=250)
    for name in ("first", "second"):
        cache.put(key=f"k/{name}", data=name.encode() * 20)  # 100 bytes and more
    cache.get(key="k/first")  # now the second is the least recently used
    cache.put(key="k/third", data=b"x" * 100)
    blobs = {p.name for p in (tmp_path / "blobs").iterdir()}
    assert blobs == {sha256_hex(b"first" * 20), sha256_hex(b"x" * 100)}
    assert sum(p.stat().st_size for p in (tmp_path / "blobs").iterdir()) <= 250
    assert cache.get(key="k/second") == b"second" * 20  # fetched again from the bucket


def test_a_purged_object_is_never_served_from_the_cache(endpoint: str, bucket: str, tmp_path: Path):
    s3 = _s3(endpoint, bucket)
    here = CachedArtifactStore(store=s3, root=tmp_path / "here", max_bytes=MIB)
    there = CachedArtifactStore(store=s3, root=tmp_path / "there", max_bytes=MIB)
    here.put(key="m/ckpt.pt", data=b"holds erased records")
    assert there.get(key="m/ckpt.pt") == b"holds erased records"
    assert here.purge(key="m/ckpt.pt") == 1  # another worker purges it
    assert list((tmp_path / "here" / "blobs").iterdir()) == []
    with pytest.raises(KeyError):
        there.get(key="m/ckpt.pt")
    assert list((tmp_path / "there" / "blobs").iterdir()) == []
    assert there.cached_keys() == []


def test_sweep_and_evict_remove_copies_of_purged_objects(
    endpoint: str, bucket: str, tmp_path: Path
):
    s3 = _s3(endpoint, bucket)
    worker = CachedArtifactStore(store=s3, root=tmp_path, max_bytes=MIB)
    for name in ("gone", "kept", "evicted"):
        worker.put(key=f"m/{name}.pt", data=name.encode())
    s3.purge(key="m/gone.pt")  # purged through another worker
    assert worker.sweep() == 1
    assert worker.cached_keys() == ["m/evicted.pt", "m/kept.pt"]
    assert worker.evict(keys=["m/evicted.pt", "m/never-cached.pt"]) == 1
    assert worker.cached_keys() == ["m/kept.pt"]
    assert {p.name for p in (tmp_path / "blobs").iterdir()} == {sha256_hex(b"kept")}
    assert worker.get(key="m/evicted.pt") == b"evicted"  # still in the bucket
