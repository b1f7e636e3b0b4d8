"""Stub of torchvision.datasets (see ../__init__.py)."""
from torchvision import placeholder


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return placeholder(__name__, name)
