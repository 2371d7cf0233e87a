"""Where checkpoint blobs live: a port with two adapters.

- :class:`GridFSStore` (default): the scheduler's own MongoDB, GridFS bucket
  ``checkpoint_bucket``; nothing else to run.
- :class:`S3Store`: any S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2) through
  the ``minio`` client, objects ``<prefix><job_id>/<checkpoint_id>``. For production,
  where checkpoints of many jobs outgrow a database. (boto3 cannot be installed beside
  the ``kubernetes`` client this workspace uses: botocore pins python-dateutil < 3,
  kubernetes ≥ 37 needs ≥ 3.)

The job document records which checkpoint is the latest (``latest_checkpoint``); the
store only keeps blobs. A blob written for a write that then loses its conditional
update (a fenced primary) is deleted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any, Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile

from qlp_scheduler.settings import SchedulerSettings


class CheckpointStore(Protocol):
    def uri(self, job_id: str, checkpoint_id: str) -> str: ...

    async def put(self, job_id: str, checkpoint_id: str, data: bytes, meta: dict[str, Any]) -> None:
        """Store a blob under its id (idempotent: the same id twice is one blob)."""

    async def get(self, job_id: str, checkpoint_id: str) -> bytes | None:
        """The blob, or None when it is gone."""

    async def delete(self, job_id: str, checkpoint_id: str) -> None:
        """Remove a blob; a missing one is not an error."""

    async def newest_first(self, job_id: str) -> list[str]:
        """The job's checkpoint ids, newest first."""


class GridFSStore:
    def __init__(self, db: Any, bucket: str) -> None:
        self.bucket_name = bucket
        self.bucket = AsyncGridFSBucket(db, bucket_name=bucket)

    def uri(self, job_id: str, checkpoint_id: str) -> str:
        return f"gridfs://{self.bucket_name}/{checkpoint_id}"

    async def put(self, job_id: str, checkpoint_id: str, data: bytes, meta: dict[str, Any]) -> None:
        await self.bucket.upload_from_stream_with_id(
            checkpoint_id, checkpoint_id, data, metadata={"job_id": job_id, **meta}
        )

    async def get(self, job_id: str, checkpoint_id: str) -> bytes | None:
        try:
            stream = await self.bucket.open_download_stream(checkpoint_id)
        except NoFile:
            return None
        data: bytes = await stream.read()
        return data

    async def delete(self, job_id: str, checkpoint_id: str) -> None:
        with contextlib.suppress(NoFile):
            await self.bucket.delete(checkpoint_id)

    async def newest_first(self, job_id: str) -> list[str]:
        cur = self.bucket.find({"metadata.job_id": job_id}).sort("uploadDate", -1)
        return [str(f._id) async for f in cur]


class S3Store:
    """S3-compatible object storage. The client is synchronous; calls run in threads."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        prefix: str = "checkpoints/",
        region: str | None = None,
        secure: bool = True,
        client: Any = None,
    ) -> None:
        from minio import Minio

        self.bucket = bucket
        self.prefix = prefix
        self.client = client or Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )

    def key(self, job_id: str, checkpoint_id: str) -> str:
        return f"{self.prefix}{job_id}/{checkpoint_id}"

    def uri(self, job_id: str, checkpoint_id: str) -> str:
        return f"s3://{self.bucket}/{self.key(job_id, checkpoint_id)}"

    async def put(self, job_id: str, checkpoint_id: str, data: bytes, meta: dict[str, Any]) -> None:
        metadata: dict[str, str | list[str] | tuple[str]] = {
            k: str(v) for k, v in meta.items() if isinstance(v, str | int)
        }

        def _put() -> None:
            self.client.put_object(
                self.bucket,
                self.key(job_id, checkpoint_id),
                io.BytesIO(data),
                len(data),
                content_type="application/octet-stream",
                metadata=metadata,
            )

        await asyncio.to_thread(_put)

    async def get(self, job_id: str, checkpoint_id: str) -> bytes | None:
        from minio.error import S3Error

        def _get() -> bytes | None:
            try:
                resp = self.client.get_object(self.bucket, self.key(job_id, checkpoint_id))
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                data: bytes = resp.read()
                return data
            finally:
                resp.close()
                resp.release_conn()

        return await asyncio.to_thread(_get)

    async def delete(self, job_id: str, checkpoint_id: str) -> None:
        await asyncio.to_thread(
            self.client.remove_object, self.bucket, self.key(job_id, checkpoint_id)
        )

    async def newest_first(self, job_id: str) -> list[str]:
        def _list() -> list[str]:
            objs = list(
                self.client.list_objects(
                    self.bucket, prefix=f"{self.prefix}{job_id}/", recursive=True
                )
            )
            objs.sort(key=lambda o: o.last_modified, reverse=True)
            return [str(o.object_name).rsplit("/", 1)[-1] for o in objs]

        return await asyncio.to_thread(_list)


def make_store(db: Any, settings: SchedulerSettings) -> CheckpointStore:
    if settings.checkpoint_store == "s3":
        return S3Store(
            settings.checkpoint_s3_endpoint,
            settings.checkpoint_bucket,
            settings.checkpoint_s3_access_key,
            settings.checkpoint_s3_secret_key.get_secret_value(),
            prefix=settings.checkpoint_s3_prefix,
            region=settings.checkpoint_s3_region or None,
            secure=settings.checkpoint_s3_secure,
        )
    return GridFSStore(db, settings.checkpoint_bucket)
