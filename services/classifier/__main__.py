"""``python -m services.classifier`` runs the classifier."""

import asyncio

from services.classifier.app import main

asyncio.run(main())
