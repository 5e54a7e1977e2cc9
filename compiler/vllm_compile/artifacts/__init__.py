"""Builders of the deployment artifacts' data (compose, Kubernetes, Helm values, report); `render.py` writes them."""
