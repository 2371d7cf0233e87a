"""The S3 checkpoint adapter at its boundary: the real ``minio`` client talks HTTP to a
local stand-in for an S3 endpoint (a few lines of http.server that keep objects in a
dict and answer the S3 XML shapes; named as such: it is not S3 and checks nothing
S3 would check beyond the request's shape and its SigV4 authorization header)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from qlp_scheduler.checkpoint_store import S3Store
from qlp_scheduler.settings import SchedulerSettings


class _StandInS3(BaseHTTPRequestHandler):
    objects: dict[str, tuple[bytes, datetime]] = {}
    auth: list[str] = []

    def log_message(self, *_: Any) -> None:
        pass

    def _key(self) -> str:
        return unquote(urlparse(self.path).path.lstrip("/"))

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/xml") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.auth.append(self.headers.get("Authorization", ""))
        n = int(self.headers.get("Content-Length", "0"))
        self.objects[self._key()] = (self.rfile.read(n), datetime.now(UTC))
        self.send_response(200)
        self.send_header("ETag", '"etag"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.auth.append(self.headers.get("Authorization", ""))
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if "list-type" in q:
            bucket = url.path.strip("/")
            prefix = q.get("prefix", [""])[0]
            items = "".join(
                f"<Contents><Key>{k.split('/', 1)[1]}</Key>"
                f"<LastModified>{t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z</LastModified>"
                f"<ETag>&quot;e&quot;</ETag><Size>{len(b)}</Size></Contents>"
                for k, (b, t) in sorted(self.objects.items())
                if k.startswith(f"{bucket}/{prefix}")
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{bucket}</Name><Prefix>{prefix}</Prefix><IsTruncated>false</IsTruncated>"
                f"{items}</ListBucketResult>"
            )
            return self._send(200, body.encode())
        got = self.objects.get(self._key())
        if got is None:
            body = (
                "<Error><Code>NoSuchKey</Code><Message>gone</Message>"
                f"<Key>{self._key()}</Key><RequestId>1</RequestId></Error>"
            )
            return self._send(404, body.encode())
        return self._send(200, got[0], "application/octet-stream")

    def do_DELETE(self) -> None:
        self.objects.pop(self._key(), None)
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def stand_in() -> Iterator[str]:
    _StandInS3.objects = {}
    _StandInS3.auth = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _StandInS3)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


async def test_put_get_list_delete_through_the_s3_protocol(stand_in: str) -> None:
    store = S3Store(stand_in, "ckpts", "AKTEST", "secret", region="eu-west-1", secure=False)
    await store.put("job_1", "ckp_a", b"first", {"step": 10, "org_id": "org_1"})
    await store.put("job_1", "ckp_b", b"second" * 1000, {"step": 20})
    await store.put("job_2", "ckp_c", b"other job", {"step": 5})
    assert await store.get("job_1", "ckp_a") == b"first"
    assert await store.get("job_1", "ckp_b") == b"second" * 1000
    assert await store.get("job_1", "ckp_gone") is None
    assert set(await store.newest_first("job_1")) == {"ckp_a", "ckp_b"}
    await store.delete("job_1", "ckp_a")
    assert await store.newest_first("job_1") == ["ckp_b"]
    assert store.uri("job_1", "ckp_b") == "s3://ckpts/checkpoints/job_1/ckp_b"
    assert "ckpts/checkpoints/job_2/ckp_c" in _StandInS3.objects
    # every request is signed with SigV4 for the configured key and region
    assert _StandInS3.auth and all(
        a.startswith("AWS4-HMAC-SHA256 Credential=AKTEST/") and "/eu-west-1/s3/aws4_request" in a
        for a in _StandInS3.auth
    )


BASE: dict[str, Any] = {"kafka_bootstrap_servers": "127.0.0.1:1", "mongodb_url": "mongodb://x"}


def test_s3_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="CHECKPOINT_S3_ENDPOINT"):
        SchedulerSettings(**BASE, checkpoint_store="s3", checkpoint_s3_endpoint="s3.example.com")
    ok = SchedulerSettings(
        **BASE,
        checkpoint_store="s3",
        checkpoint_s3_endpoint="s3.example.com",
        checkpoint_s3_access_key="k",
        checkpoint_s3_secret_key="s",  # type: ignore[arg-type]
    )
    assert ok.checkpoint_store == "s3"
