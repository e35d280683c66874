"""``python -m services.distributor``: run the distributor service."""

from __future__ import annotations

import asyncio
import sys

from dagmonitor.errors import DagmonitorError
from services.distributor.app import main

if __name__ == "__main__":
    try:
        asyncio.run(main())
    except DagmonitorError as exc:
        print(f"distributor: {exc}", file=sys.stderr)
        sys.exit(1)
