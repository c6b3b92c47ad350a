"""wsseg: weakly-supervised myocardial fibrosis segmentation in LGE cardiac MRI."""

from wsseg.interfaces import (
    CAMGenerator,
    CAMOutput,
    PluginConfig,
    PseudoLabeler,
    Segmenter,
    WeakSet,
)

__version__ = "0.2.0"

__all__ = [
    "CAMGenerator",
    "CAMOutput",
    "PluginConfig",
    "PseudoLabeler",
    "Segmenter",
    "WeakSet",
    "__version__",
]
