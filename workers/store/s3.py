"""Artifacts in an S3-compatible bucket with versioning on.

Every put records the SHA-256 of its bytes in the object's metadata and every get checks it, so
a corrupted or swapped object is refused instead of loaded. Deleting a key removes every version
and delete marker it has: with versioning on, a plain DELETE only hides the bytes behind a
marker, and an erasure must not leave them in an older version. Imports no torch.
"""

from __future__ import annotations

import builtins
import hashlib
import io
from collections.abc import Iterator
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from workers.engine.artifacts import ObjectVersion, validate_key

SHA256_METADATA = "sha256"  # stored as `x-amz-meta-sha256`
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
_MISSING = {"404", "NoSuchKey", "NotFound"}


class ArtifactIntegrityError(Exception):
    """The bytes stored under a key are not the bytes that were put there."""


def s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> Any:
    """A boto3 S3 client; without an access key, boto3 finds credentials itself (instance
    role, environment, shared files). Path-style addressing suits MinIO and AWS alike."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _MISSING


class S3ArtifactStore:
    """Blobs as objects under `prefix` in `bucket`."""

    def __init__(
        self, *, client: Any, bucket: str, prefix: str = "", multipart_threshold: int
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold)

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.location!r})"

    @property
    def location(self) -> str:
        """Where the blobs are, as the certificate names the store."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def put(self, *, key: str, data: bytes) -> None:
        self.client.upload_fileobj(
            io.BytesIO(data),
            self.bucket,
            self._name(key),
            ExtraArgs={"Metadata": {SHA256_METADATA: sha256_hex(data)}},
            Config=self.transfer,
        )

    def get(self, *, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _missing(error):
                raise KeyError(key) from None
            raise
        data: bytes = response["Body"].read()
        expected = response.get("Metadata", {}).get(SHA256_METADATA)
        if expected is None or sha256_hex(data) != expected:
            raise ArtifactIntegrityError(f"artifact {key!r} does not match its stored SHA-256")
        return data

    def sha256(self, *, key: str) -> str | None:
        """The recorded SHA-256 of the current object under `key` (one HEAD); None when there
        is none."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _missing(error):
                return None
            raise
        digest = response.get("Metadata", {}).get(SHA256_METADATA)
        return str(digest) if digest else ""

    def exists(self, *, key: str) -> bool:
        return self.sha256(key=key) is not None

    def list(self, *, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        start = len(self.prefix)
        return sorted(item["Key"][start:] for page in pages for item in page.get("Contents", []))

    def _versions(self, name: str) -> Iterator[ObjectVersion]:
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=name
        )
        start = len(self.prefix)
        for page in pages:
            for field, marker in (("Versions", False), ("DeleteMarkers", True)):
                for item in page.get(field, []):
                    yield ObjectVersion(
                        key=item["Key"][start:],
                        version_id=item["VersionId"],
                        is_delete_marker=marker,
                    )

    def list_versions(self, *, prefix: str = "") -> builtins.list[ObjectVersion]:
        """Every object version and delete marker under `prefix`, including hidden ones."""
        return sorted(self._versions(self.prefix + prefix), key=lambda v: (v.key, v.version_id))

    def purge(self, *, key: str) -> int:
        """Remove every version and delete marker of `key`; returns how many there were."""
        name = self._name(key)
        relative = name[len(self.prefix) :]
        # The listing is by prefix: `a.pt` also lists `a.pt.json`.
        versions = [v for v in self._versions(name) if v.key == relative]
        for start in range(0, len(versions), DELETE_BATCH):
            batch = versions[start : start + DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": name, "VersionId": v.version_id} for v in batch],
                    "Quiet": True,
                },
            )
            if response.get("Errors"):
                codes = sorted({str(e.get("Code")) for e in response["Errors"]})
                raise RuntimeError(f"object versions not deleted: {', '.join(codes)}")
        return len(versions)

    def delete(self, *, key: str) -> bool:
        return self.purge(key=key) > 0
