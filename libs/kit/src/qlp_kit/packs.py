"""Template artifacts: pattern packs as archives.

A pattern pack is what generation renders a project from: a ``pack.json`` manifest and
Jinja2 templates (``<path>.j2``, rendered to ``<path>``), the same layout as
generation's own packs (``qlp_generation/packs/<pack>/``). A marketplace template is
such a pack packaged as a zip or tar.gz archive, either at the archive's root or in one
top-level folder. The marketplace checks it when a version is added; generation checks
it again before it keeps it (both use :func:`read_pack`).

The rules are deliberately narrow because packs come from untrusted creators: regular
files only (no links, devices or folders outside the pack), relative paths without
``..``, at most :data:`MAX_FILES` files, :data:`MAX_FILE_BYTES` per file and
:data:`MAX_TOTAL_BYTES` unpacked (zip bombs stop there), UTF-8 text, and a manifest
with an id, a semantic version and a description.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Any

MANIFEST = "pack.json"
#: The archive as uploaded (and as carried on ListingVersionAdded.template_archive).
MAX_ARCHIVE_BYTES = 256 * 1024
MAX_FILES = 200
MAX_FILE_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024
ZIP = "application/zip"
TAR_GZ = "application/gzip"

_ID = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_KEYWORD = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class PackError(ValueError):
    """The archive is not a valid pattern pack (a 4xx to whoever sent it)."""


@dataclass(frozen=True)
class PackManifest:
    id: str
    version: str
    description: str
    keywords: tuple[str, ...] = ()
    #: Where the pack came from (e.g. an exported generation version); free-form.
    source: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "description": self.description,
        }
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class Pack:
    manifest: PackManifest
    #: Template path (relative, ending in ``.j2``) → its source.
    templates: dict[str, str]


def sniff(data: bytes) -> str | None:
    """The archive's content type by its magic bytes (None: neither zip nor gzip)."""
    if data[:4] == b"PK\x03\x04":
        return ZIP
    if data[:2] == b"\x1f\x8b":
        return TAR_GZ
    return None


def check_path(path: str) -> str:
    """A safe relative path inside the pack (no absolute path, ``..``, odd names)."""
    if not path or path.startswith(("/", "\\")) or "\\" in path or "\x00" in path:
        raise PackError(f"path {path!r} is not a relative POSIX path")
    parts = path.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            raise PackError(f"path {path!r} has an empty, '.' or '..' part")
        if not _PART.match(p):
            raise PackError(f"path {path!r}: letters, digits, '_', '-' and '.' only")
    if len(parts) > 8:
        raise PackError(f"path {path!r} is nested too deep (8 levels at most)")
    return path


def parse_manifest(raw: bytes) -> PackManifest:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackError(f"{MANIFEST} does not parse as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PackError(f"{MANIFEST} must be a JSON object")
    pid, version, desc = doc.get("id"), doc.get("version"), doc.get("description", "")
    if not isinstance(pid, str) or not _ID.match(pid):
        raise PackError(f"{MANIFEST}: id must be lowercase letters, digits and '-' (2-40)")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise PackError(f"{MANIFEST}: version must be semantic (MAJOR.MINOR.PATCH)")
    if not isinstance(desc, str) or len(desc) > 500:
        raise PackError(f"{MANIFEST}: description must be text of at most 500 characters")
    keywords = doc.get("keywords", [])
    if not isinstance(keywords, list) or len(keywords) > 20:
        raise PackError(f"{MANIFEST}: keywords must be a list of at most 20")
    for k in keywords:
        if not isinstance(k, str) or not _KEYWORD.match(k):
            raise PackError(f"{MANIFEST}: keyword {k!r}: lowercase letters, digits and '-'")
    source = doc.get("source", {})
    if not isinstance(source, dict):
        raise PackError(f"{MANIFEST}: source must be an object")
    return PackManifest(pid, version, desc, tuple(keywords), source)


def _entries(data: bytes, kind: str) -> list[tuple[str, bytes]]:
    """(path, bytes) of every regular file, refusing anything else and bounding sizes
    before anything is decompressed in full."""
    out: list[tuple[str, bytes]] = []
    total = 0

    def take(name: str, size: int, read: Any) -> None:
        nonlocal total
        if len(out) >= MAX_FILES:
            raise PackError(f"the pack has more than {MAX_FILES} files")
        if size > MAX_FILE_BYTES:
            raise PackError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise PackError(f"the pack unpacks to more than {MAX_TOTAL_BYTES} bytes")
        content = read()
        if len(content) != size:
            raise PackError(f"{name}: its size does not match the archive's entry")
        out.append((check_path(name), content))

    try:
        if kind == ZIP:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for info in z.infolist():
                    if info.is_dir():
                        check_path(info.filename.rstrip("/"))
                        continue
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode not in (0, 0o100000):
                        raise PackError(f"{info.filename} is not a regular file")
                    # bounded read: a lying header cannot make it decompress more
                    name = info.filename

                    def read_zip(i: zipfile.ZipInfo = info) -> bytes:
                        with z.open(i) as f:
                            return f.read(MAX_FILE_BYTES + 1)

                    take(name, info.file_size, read_zip)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
                for m in t:
                    if m.isdir():
                        check_path(m.name.rstrip("/").removeprefix("./") or "x")
                        continue
                    if not m.isfile():
                        raise PackError(f"{m.name} is not a regular file (links are refused)")
                    name = m.name.removeprefix("./")

                    def read_tar(member: tarfile.TarInfo = m) -> bytes:
                        f = t.extractfile(member)
                        return f.read(MAX_FILE_BYTES + 1) if f else b""

                    take(name, m.size, read_tar)
    except PackError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise PackError(f"the archive cannot be read: {exc}") from None
    return out


def read_pack(data: bytes, content_type: str | None = None) -> Pack:
    """Parse and check a pack archive (zip or tar.gz, told by its magic bytes); raises
    :class:`PackError` saying what is wrong."""
    if not data:
        raise PackError("the archive is empty")
    if len(data) > MAX_ARCHIVE_BYTES:
        raise PackError(f"a template archive is at most {MAX_ARCHIVE_BYTES} bytes")
    kind = sniff(data)
    if kind is None:
        raise PackError("a template is a zip or tar.gz archive of a pattern pack")
    entries = _entries(data, kind)
    names = [n for n, _ in entries]
    if len(set(names)) != len(names):
        raise PackError("the archive holds the same path twice")
    # one top-level folder holding pack.json is allowed (an archive of the pack folder)
    prefix = ""
    if MANIFEST not in names:
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in names:
            prefix = next(iter(tops)) + "/"
        else:
            raise PackError(f"the pack has no {MANIFEST} at its root (or in its one folder)")
    manifest: PackManifest | None = None
    templates: dict[str, str] = {}
    for name, content in entries:
        rel = name.removeprefix(prefix)
        if rel == MANIFEST:
            manifest = parse_manifest(content)
            continue
        if not rel.endswith(".j2") or rel == ".j2" or rel.split("/")[-1] == ".j2":
            raise PackError(f"{rel}: a pack holds {MANIFEST} and Jinja2 templates (*.j2) only")
        try:
            templates[rel] = content.decode("utf-8")
        except UnicodeDecodeError:
            raise PackError(f"{rel} is not UTF-8 text") from None
    assert manifest is not None
    if not templates:
        raise PackError("the pack has no templates (*.j2)")
    return Pack(manifest, templates)


def write_pack(manifest: PackManifest, templates: dict[str, str], folder: str = "") -> bytes:
    """A pack as a tar.gz archive (deterministic: sorted, zero times), optionally in one
    top-level folder."""
    buf = io.BytesIO()
    lead = f"{check_path(folder)}/" if folder else ""
    files = {MANIFEST: json.dumps(manifest.as_dict(), indent=2).encode("utf-8")}
    files.update({check_path(p): s.encode("utf-8") for p, s in templates.items()})
    with tarfile.open(fileobj=buf, mode="w") as t:
        for path in sorted(files):
            data = files[path]
            info = tarfile.TarInfo(lead + path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)
