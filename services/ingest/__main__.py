"""``python -m services.ingest`` runs the ingest service (see the package docstring)."""

from dagmonitor.service import main
from services.ingest.app import SERVICE, serve

if __name__ == "__main__":
    main(SERVICE, serve)
