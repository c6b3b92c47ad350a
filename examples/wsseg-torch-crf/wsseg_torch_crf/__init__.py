"""wsseg-torch-crf: the ``torch-crf`` pseudo-labeler, an example third-party wsseg plugin.

The steps of the built-in ``otsu-crf`` labeler, with the DenseCRF replaced by an exact
mean-field CRF written in PyTorch (:func:`mean_field_crf`), which runs batched on CPU or GPU.
"""

from wsseg_torch_crf.crf import mean_field_crf
from wsseg_torch_crf.labeler import TorchCRFConfig, TorchCRFLabeler

__all__ = ["TorchCRFConfig", "TorchCRFLabeler", "mean_field_crf"]
