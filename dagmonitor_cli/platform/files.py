"""Files that readers may open at any moment: written aside, then put in place at once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace (or create) ``path`` at once: a reader sees the old file or the new one, never
    half of it. The new file has mode 0600 (``mkstemp``'s), is on disk before it is renamed, and
    its temporary name (``.<name>.<random>``) never matches a glob for ``*<suffix>``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
