"""Stub of torchvision.transforms (see ../__init__.py). Only enough for `import timm` to succeed."""
from torchvision import placeholder
from torchvision.transforms.functional import InterpolationMode  # noqa: F401  (timm imports it from either place)


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return placeholder(__name__, name)
