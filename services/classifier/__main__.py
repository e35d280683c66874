"""``python -m services.classifier`` runs the classifier service (see the package docstring)."""

from dagmonitor.service import main
from services.classifier.app import SERVICE, serve

if __name__ == "__main__":
    main(SERVICE, serve)
