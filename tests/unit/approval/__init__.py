"""Unit tests of the approval service (no servers)."""
