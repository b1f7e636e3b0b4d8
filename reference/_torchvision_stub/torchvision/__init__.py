"""Import-only stand-in for torchvision, used by reference/timm_import.py.

Why: timm 1.0.29 (the only timm the local index serves) imports torchvision at import time
(timm/layers/create_norm.py, timm/layers/norm_act.py, timm/utils/model.py: `FrozenBatchNorm2d`;
timm/data/transforms.py: `torchvision.transforms`), and the local torchvision wheels do not load with the
CPU-only torch 2.13.0 wheel ("operator torchvision::nms does not exist"). The reference uses none of it:
it builds timm's VisionTransformer and does its own Pillow preprocessing. Every name here is a placeholder
that raises when used, so nothing can silently run on stub code.
"""
__version__ = '0.0.0+minicpmv-reference-stub'
IS_STUB = True


class _Missing:
    """Placeholder for any torchvision object; fails loudly if instantiated or called."""

    _name = 'torchvision object'

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f'{self._name} is not available: torchvision here is an import-only stub '
                           '(reference/_torchvision_stub); install a torchvision that matches torch to use it')


def placeholder(module, name):
    return type(name, (_Missing,), {'_name': f'{module}.{name}', '__module__': module})
