"""wsseg-drn-attention: the built-in ``drn-attention`` CAM generator of wsseg.

DRN-D-22 backbone (output stride 4) -> non-local self-attention -> 1x1 conv head (the CAM) ->
myocardium-restricted average pooling, trained on slice- or stack-level weak labels.
Registered under the ``wsseg.cam_generators`` entry-point group as ``drn-attention``.
"""

from wsseg_drn_attention.attention import NonLocalAttention, non_local_attention
from wsseg_drn_attention.drn import DEFAULT_CHANNELS, DRND22, BasicBlock, drn_d_22
from wsseg_drn_attention.generator import DRNAttentionCAM, DRNAttentionConfig
from wsseg_drn_attention.model import CAMNet, cam_net
from wsseg_drn_attention.pooling import (
    MyocardiumRestrictedPool,
    myocardium_mask,
    myocardium_restricted_pool,
    restrict,
    restricted_average,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHANNELS",
    "DRND22",
    "BasicBlock",
    "CAMNet",
    "DRNAttentionCAM",
    "DRNAttentionConfig",
    "MyocardiumRestrictedPool",
    "NonLocalAttention",
    "cam_net",
    "drn_d_22",
    "myocardium_mask",
    "myocardium_restricted_pool",
    "non_local_attention",
    "restrict",
    "restricted_average",
    "__version__",
]
