"""Deployment: the embedded stack, AWS provisioning and the worker bootstrap."""
