"""The on-disk cache shared by the model cache (compiler/cache.py) and the C compiler cache
(frontend/toolchain.py): where it lives, how keys are hashed, how entries are written.

Entries are created only by renaming a finished temporary file or directory into place, so
a reader sees a whole entry or none, and two processes filling the same entry at once both
succeed. A cache that cannot be written (a read-only directory, a full disk) is not an
error: the caller keeps what it computed and the next run computes it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterable

CACHE_ENV = "WASMFORMER_CACHE"
DEFAULT_CACHE_ROOT = Path("~/.cache/wasmformer")
# Hex digits of a SHA-256 kept in entry names: 128 bits, no collisions in practice.
HASH_DIGITS = 32


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$WASMFORMER_CACHE``, else ``~/.cache/wasmformer``."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_ROOT
    return Path(chosen).expanduser()


class KeyHasher:
    """A SHA-256 over a sequence of parts; each part is length-prefixed, so no two sequences collide by concatenation."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add(self, part: str | bytes) -> KeyHasher:
        data = part.encode() if isinstance(part, str) else bytes(part)
        self._sha.update(len(data).to_bytes(8, "little"))
        self._sha.update(data)
        return self

    def add_files(self, root: Path, paths: Iterable[Path]) -> KeyHasher:
        """Each file's path relative to ``root`` and its bytes, in sorted path order."""
        for path in sorted(paths):
            self.add(path.relative_to(root).as_posix()).add(path.read_bytes())
        return self

    def key(self) -> str:
        return self._sha.hexdigest()[:HASH_DIGITS]


def file_digest(path: Path) -> str:
    """The full SHA-256 of one file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_file_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file renamed into place; False if the cache is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(staging, path)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):  # renamed into place
            os.unlink(staging)
