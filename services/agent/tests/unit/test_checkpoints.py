"""Checkpoint pack/unpack: deterministic bytes, round trip, temp files skipped,
unsafe archives refused."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from qlp_agent import checkpoints as ck


def make(d: Path) -> None:
    (d / "sub").mkdir(parents=True)
    (d / "model.bin").write_bytes(os.urandom(2048))
    (d / "sub" / "opt.json").write_text('{"lr": 0.1}')
    (d / ck.MANIFEST).write_text('{"step": 40}')
    (d / "model.bin.tmp").write_text("half-written")


def test_pack_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make(src)
    a = ck.pack(src)
    os.utime(src / "model.bin", (1, 1))  # times do not matter
    assert ck.pack(src) == a
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "stale.bin").write_text("old")  # replaced, not merged
    names = ck.unpack(a, dst)
    assert sorted(names) == sorted([ck.MANIFEST, "model.bin", "sub/opt.json"])
    assert (dst / "model.bin").read_bytes() == (src / "model.bin").read_bytes()
    assert not (dst / "stale.bin").exists() and not (dst / "model.bin.tmp").exists()
    assert ck.read_step(dst) == 40


def test_signature_tracks_changes(tmp_path: Path) -> None:
    d = tmp_path / "c"
    assert ck.signature(d) == ck.signature(tmp_path / "missing") and not ck.has_files(d)
    make(d)
    s1 = ck.signature(d)
    (d / "x.tmp").write_text("ignored")
    assert ck.signature(d) == s1
    (d / "model.bin").write_bytes(b"new")
    assert ck.signature(d) != s1


@pytest.mark.parametrize("name", ["../evil", "/abs/evil"])
def test_unpack_refuses_unsafe_paths(tmp_path: Path, name: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ck.UnsafeArchive):
        ck.unpack(buf.getvalue(), tmp_path / "d")


def test_unpack_refuses_links(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ck.UnsafeArchive):
        ck.unpack(buf.getvalue(), tmp_path / "d")


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ('{"step": 7}', 7),
        ('{"step": -1}', None),
        ("[]", None),
        ("{bad", None),
        ('{"step": true}', None),
    ],
)
def test_read_step(tmp_path: Path, text: str, step: int | None) -> None:
    (tmp_path / ck.MANIFEST).write_text(text)
    assert ck.read_step(tmp_path) == step
