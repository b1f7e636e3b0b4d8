"""Stub of torchvision.transforms.functional (see ../__init__.py)."""
import enum

from torchvision import placeholder


class InterpolationMode(enum.Enum):
    # Same members and values as torchvision's enum: timm builds lookup tables from them at import time.
    NEAREST = 'nearest'
    NEAREST_EXACT = 'nearest-exact'
    BILINEAR = 'bilinear'
    BICUBIC = 'bicubic'
    BOX = 'box'
    HAMMING = 'hamming'
    LANCZOS = 'lanczos'


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return placeholder(__name__, name)
