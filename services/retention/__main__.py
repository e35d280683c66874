"""``python -m services.retention`` runs the retention service (see the package docstring)."""

from dagmonitor.service import main
from services.retention.app import SERVICE, serve

if __name__ == "__main__":
    main(SERVICE, serve)
