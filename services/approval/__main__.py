"""``python -m services.approval``: run the approval service (see the package docstring)."""

import asyncio
import sys

from dagmonitor.errors import DagmonitorError
from services.approval.app import serve

if __name__ == "__main__":
    try:
        asyncio.run(serve())
    except DagmonitorError as exc:  # configuration or migration problems: one line, exit 1
        print(f"approval: {exc}", file=sys.stderr)
        sys.exit(1)
