"""The retention service (see ARCHITECTURE.md, section 2)."""
