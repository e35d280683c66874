"""``python -m services.ingest`` runs the ingest service."""

import asyncio

from services.ingest.app import main

asyncio.run(main())
