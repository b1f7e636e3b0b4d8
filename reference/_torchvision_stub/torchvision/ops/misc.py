"""Stub of torchvision.ops.misc (see ../__init__.py). timm only uses FrozenBatchNorm2d in isinstance checks
and in conversion helpers that the reference never calls."""
import torch


class FrozenBatchNorm2d(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        raise RuntimeError('torchvision.ops.misc.FrozenBatchNorm2d is not available: torchvision here is an '
                           'import-only stub (reference/_torchvision_stub)')
