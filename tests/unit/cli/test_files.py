"""write_atomic: the new content in place at once, with owner-only access, and no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dagmonitor_cli.platform.files import write_atomic


def test_replaces_the_file_with_owner_only_access(tmp_path: Path) -> None:
    target = tmp_path / "stack.env"
    target.write_text("OLD=1\n")
    os.chmod(target, 0o644)
    write_atomic(target, "NEW=2\n")
    assert target.read_text() == "NEW=2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["stack.env"]


def test_bytes_are_written_as_they_are(tmp_path: Path) -> None:
    target = tmp_path / "m.eml"
    write_atomic(target, b"\r\nSubject: x\r\n\x00")
    assert target.read_bytes() == b"\r\nSubject: x\r\n\x00"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "stack.json"
    target.write_text("{}")
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["stack.json"]
