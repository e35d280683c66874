"""Kubernetes deployment: the access table and the generator of derived manifests."""
