"""Non-local self-attention whose output gates the input feature map.

As in the paper (Klein et al., section 3.2): query, key and value paths (1x1 convolutions) capture
global context over all spatial positions of one image, and the result "is then multiplied with the
original feature map before the final convolution". Attention weights are the embedded-Gaussian
non-local form (Wang et al. 2018): ``softmax_j(q_i . k_j)``, without a temperature.

Attention never crosses images: each sample of the batch attends over its own ``H*W`` positions only,
so with the stack model's slices folded into the batch there is no mixing across slices.
"""

from __future__ import annotations

from torch import Tensor, nn


def non_local_attention(x: Tensor, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """Gate ``x`` with attended values: ``x * (V softmax(Q^T K)^T)``, per image.

    ``x`` and ``value``: ``(N, C, H, W)``; ``query`` and ``key``: ``(N, C', H, W)``.
    Returns ``(N, C, H, W)``.
    """
    n, c, h, w = value.shape
    q = query.flatten(2).transpose(1, 2)  # (N, HW, C')
    k = key.flatten(2)  # (N, C', HW)
    attn = (q @ k).softmax(dim=-1)  # (N, HW query, HW key), rows sum to 1
    v = value.flatten(2)  # (N, C, HW)
    out = v @ attn.transpose(1, 2)  # (N, C, HW query)
    return x * out.view(n, c, h, w)


class NonLocalAttention(nn.Module):
    """Non-local attention block: 1x1 query/key (``channels // reduction``) and value (``channels``) convs."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError("channels and reduction must be positive")
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return non_local_attention(x, self.query(x), self.key(x), self.value(x))
