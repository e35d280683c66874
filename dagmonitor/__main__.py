"""``python -m dagmonitor`` is the ``dagmonitor`` command."""

from dagmonitor.cli import main

main()
