"""``python -m services.retention``: run the retention service (see the package docstring)."""

import asyncio
import sys

from dagmonitor.errors import DagmonitorError
from services.retention.app import serve

if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except DagmonitorError as exc:  # configuration or migration problems: one line, exit 1
        print(f"retention: {exc}", file=sys.stderr)
        sys.exit(1)
