"""The ingest service (see ARCHITECTURE.md, section 2)."""
