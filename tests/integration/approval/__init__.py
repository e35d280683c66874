"""Integration tests of the approval service (real PostgreSQL and Kafka)."""
