"""``dagmonitor down`` and ``up`` on one stack take turns (the stack's lock file): a ``down``
during an ``up`` waits for it, so it cannot miss a server the ``up`` is still starting."""

from __future__ import annotations

import threading
from pathlib import Path

from dagmonitor_cli.platform.stack import LocalStack, _exclusive


def test_down_waits_for_an_up_in_progress(tmp_path: Path) -> None:
    stack = LocalStack(root=tmp_path / "stack")
    stack.root.mkdir()
    lines: list[str] = []
    finished = threading.Event()

    def down() -> None:
        stack.down(echo=lines.append)
        finished.set()

    with _exclusive(stack.root / "up.lock"):  # as ``up`` holds it while it starts servers
        worker = threading.Thread(target=down)
        worker.start()
        assert not finished.wait(0.5)
    worker.join(10)
    assert finished.is_set()
    assert lines == []  # nothing was started, so nothing was stopped


def test_down_of_a_stack_never_brought_up_does_nothing(tmp_path: Path) -> None:
    stack = LocalStack(root=tmp_path / "never")
    stack.down(echo=print)
    assert not stack.root.exists()
