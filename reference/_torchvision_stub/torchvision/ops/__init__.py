"""Stub of torchvision.ops (see ../__init__.py)."""
