"""``python -m services.distributor`` runs the distributor service (see the package docstring)."""

from dagmonitor.service import main
from services.distributor.app import SERVICE, serve

if __name__ == "__main__":
    main(SERVICE, serve)
