"""``python -m dagmonitor_cli`` is the ``dagmonitor`` command."""

from dagmonitor_cli.cli import main

main()
