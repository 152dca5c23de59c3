"""Atomic file writes: a crash or a kill never leaves a half-written file behind.

Every writer goes through a temp file in the destination folder followed by ``os.replace``,
which is atomic on POSIX file systems.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temp file name beside ``path``; on success it replaces ``path``, on any error it is removed.

    For writers that need a file name (h5py, numpy, save_pretrained of one file):
    ``with atomic_path(out) as tmp: h5py.File(tmp, "w")...``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Serialise ``obj`` as indented JSON and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def atomic_symlink(target: str, link: str | os.PathLike) -> Path:
    """Point ``link`` at ``target`` (a relative path is kept relative), replacing any old link atomically."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def write_jsonl(path: str | os.PathLike, rows) -> Path:
    """Write an iterable of dicts as JSON lines, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def iter_jsonl(lines: Iterable[str], where: str) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank JSON line; a bad line raises ValueError naming ``where:line``."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}:{lineno}: not valid JSON ({e.msg})") from None
