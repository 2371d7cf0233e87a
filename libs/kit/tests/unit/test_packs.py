"""Template pack archives: what the marketplace and generation accept and refuse."""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile

import pytest

from qlp_kit.packs import (
    MAX_ARCHIVE_BYTES,
    MAX_FILES,
    PackError,
    PackManifest,
    read_pack,
    write_pack,
)

MANIFEST = {"id": "acme-api", "version": "1.0.0", "description": "an API pack"}


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for m in members:
            payload = data.get(m.name)
            t.addfile(m, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def good() -> dict[str, bytes]:
    return {"pack.json": json.dumps(MANIFEST).encode(), "app/main.py.j2": b"x = 1\n"}


def test_round_trip_tar_gz_and_zip_in_one_folder() -> None:
    data = write_pack(PackManifest("acme-api", "1.0.0", "d", ("api",)), {"a.py.j2": "{{ x }}"})
    p = read_pack(data)
    assert p.manifest.id == "acme-api" and p.manifest.keywords == ("api",)
    assert p.templates == {"a.py.j2": "{{ x }}"}
    folder = zip_of({f"acme/{k}": v for k, v in good().items()})
    assert read_pack(folder).templates == {"app/main.py.j2": "x = 1\n"}


@pytest.mark.parametrize(
    ("files", "why"),
    [
        ({"app/main.py.j2": b"x"}, "no pack.json"),
        ({"pack.json": b"{nope", "a.j2": b"x"}, "does not parse"),
        (
            {"pack.json": json.dumps({**MANIFEST, "version": "one"}).encode(), "a.j2": b"x"},
            "semantic",
        ),
        ({"pack.json": json.dumps({**MANIFEST, "id": "Bad Id"}).encode(), "a.j2": b"x"}, "id must"),
        ({"pack.json": json.dumps(MANIFEST).encode()}, "no templates"),
        ({**good(), "run.sh": b"rm -rf /"}, "templates (*.j2) only"),
        ({**good(), "../escape.py.j2": b"x"}, "'..'"),
        ({**good(), "/etc/passwd.j2": b"x"}, "relative"),
        ({**good(), "bin.j2": b"\xff\xfe"}, "UTF-8"),
    ],
)
def test_bad_packs_are_refused_with_a_reason(files: dict[str, bytes], why: str) -> None:
    with pytest.raises(PackError, match=re.escape(why)):
        read_pack(zip_of(files))


def test_not_an_archive_and_too_large() -> None:
    with pytest.raises(PackError, match=r"zip or tar\.gz"):
        read_pack(b"just some bytes")
    with pytest.raises(PackError, match="at most"):
        read_pack(b"PK\x03\x04" + b"0" * MAX_ARCHIVE_BYTES)
    with pytest.raises(PackError, match="empty"):
        read_pack(b"")


def test_too_many_files_and_a_zip_bomb() -> None:
    many = {**good(), **{f"t{i}.j2": b"x" for i in range(MAX_FILES + 1)}}
    with pytest.raises(PackError, match="more than"):
        read_pack(zip_of(many))
    bomb = zip_of({**good(), "big.j2": b"a" * (3 * 1024 * 1024)})
    assert len(bomb) < MAX_ARCHIVE_BYTES  # small packed, large unpacked
    with pytest.raises(PackError, match="larger than"):
        read_pack(bomb)


def test_links_in_a_tar_are_refused() -> None:
    link = tarfile.TarInfo("evil.j2")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    man = tarfile.TarInfo("pack.json")
    raw = json.dumps(MANIFEST).encode()
    man.size = len(raw)
    with pytest.raises(PackError, match="not a regular file"):
        read_pack(tar_of([man, link], {"pack.json": raw}))
