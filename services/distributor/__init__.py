"""The distributor service (see ARCHITECTURE.md, section 2)."""
