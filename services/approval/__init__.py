"""The approval service (see ARCHITECTURE.md, section 2)."""
