"""Deployment artefacts; ``deploy.k8s`` generates the Kubernetes resources that derive from code."""
