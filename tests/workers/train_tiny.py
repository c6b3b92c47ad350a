"""A tiny training run by ``tests/test_distributed.py`` under torchrun with 1 or 2 processes.

It trains a BatchNorm-free convolution net with a per-sample loss (so that averaging gradients
over processes is exactly the gradient of the global batch) and saves, per rank, the final
weights and how many samples that rank trained on.
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsseg import distributed
from wsseg.augment import random_dihedral, random_dihedral_codes
from wsseg.training import Monitor, minibatches, seed_everything, train_loop

out = sys.argv[1]
distributed.setup("cpu")
seed_everything(0)
data = np.random.default_rng(1)
x = torch.from_numpy(data.normal(size=(40, 2, 16, 16)).astype(np.float32))
y = torch.from_numpy((data.random(40) > 0.5).astype(np.float32))
model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
seen = []


def batches(rng):
    for index in minibatches(len(x), 8, rng):
        codes = random_dihedral_codes(len(index), rng)
        yield distributed.local_share(index), distributed.local_share(codes)


def loss(model, batch):
    index, codes = batch
    seen.append(len(index))
    logits = model(random_dihedral(x[index], codes)).mean(dim=(1, 2, 3))
    return F.binary_cross_entropy_with_logits(logits, y[index])


history = train_loop(model, batches, loss, epochs=3, lr=0.01, seed=0, monitor=Monitor("tiny"), cosine=True)
torch.save(
    {"weights": model.state_dict(), "samples": sum(seen), "history": history}, f"{out}.rank{distributed.rank()}.pt"
)
