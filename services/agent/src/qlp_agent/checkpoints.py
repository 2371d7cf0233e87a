"""Checkpoint directory ↔ bytes.

A job writes its checkpoint files into ``$QLP_CHECKPOINT_DIR`` (atomically: write a
``*.tmp`` then rename). The agent uploads the whole directory as a deterministic
tar (sorted names, zeroed times and owners: the same files give the same bytes;
uncompressed, because model weights hardly compress and gzip costs more time than
it saves bandwidth) whenever the directory changed, and unpacks the latest one before a resumed
start. The optional manifest ``qlp-checkpoint.json`` (``{"step": N}``) tells the agent
which step the checkpoint holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

MANIFEST = "qlp-checkpoint.json"
TEMP_SUFFIXES = (".tmp", ".partial")


class UnsafeArchive(ValueError):
    """A checkpoint archive with absolute paths, ``..``, links or devices."""


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    out = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for n in sorted(names):
            p = Path(root) / n
            if n.endswith(TEMP_SUFFIXES) or not p.is_file() or p.is_symlink():
                continue
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(directory).as_posix())


def signature(directory: Path) -> str:
    """Cheap change detector: names, sizes and mtimes of the checkpoint files."""
    h = hashlib.sha256()
    for p in _files(directory):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        h.update(
            f"{p.relative_to(directory).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode()
        )
    return h.hexdigest()


def has_files(directory: Path) -> bool:
    return bool(_files(directory))


def pack(directory: Path) -> bytes:
    """Deterministic tar of the directory's regular files (temp files skipped)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in _files(directory):
            try:
                data = p.read_bytes()
            except FileNotFoundError:  # replaced while we walked
                continue
            info = tarfile.TarInfo(p.relative_to(directory).as_posix())
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def unpack(data: bytes, directory: Path) -> list[str]:
    """Replace the directory's contents with the archive's files; returns their names.
    Refuses absolute paths, ``..``, links and special files."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        members = tar.getmembers()
        for m in members:
            pp = PurePosixPath(m.name)
            if pp.is_absolute() or ".." in pp.parts or not (m.isfile() or m.isdir()):
                raise UnsafeArchive(f"refusing checkpoint member {m.name!r}")
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        names = []
        for m in members:
            target = directory / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            if src is None:
                continue
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            names.append(m.name)
    return names


def read_step(directory: Path) -> int | None:
    """The step recorded in the manifest, if the job writes one."""
    try:
        doc = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    step = doc.get("step") if isinstance(doc, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def clear(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
