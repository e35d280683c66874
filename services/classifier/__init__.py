"""The classifier service (see ARCHITECTURE.md, section 2)."""
