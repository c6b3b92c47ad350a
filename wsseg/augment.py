"""Training-time augmentation shared by the plugins."""

import numpy as np
import torch


def random_dihedral(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Apply a random flip and 90-degree rotation to each sample of ``(N, C, H, W)``.

    All channels of a sample (image, myocardium, target...) get the same transform, so stack
    inputs and targets along ``C`` before calling this. Square inputs keep their shape.
    """
    out = []
    for sample in batch:
        if rng.random() < 0.5:
            sample = sample.flip(-1)
        out.append(torch.rot90(sample, int(rng.integers(4)), dims=(-2, -1)))
    return torch.stack(out)
