"""``python -m services.approval`` runs the approval service (see the package docstring)."""

from dagmonitor.service import main
from services.approval.app import SERVICE, serve

if __name__ == "__main__":
    main(SERVICE, serve)
