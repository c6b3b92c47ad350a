"""wsseg's built-in pseudo-labeler: Multi-Otsu suppression plus DenseCRF (Klein et al., step 3).

Registered as ``otsu-crf`` in the ``wsseg.pseudo_labelers`` entry-point group.
"""

from wsseg_otsu_crf.config import OtsuCRFConfig
from wsseg_otsu_crf.crf import dense_crf
from wsseg_otsu_crf.labeler import OtsuCRFLabeler
from wsseg_otsu_crf.otsu import otsu_suppress
from wsseg_otsu_crf.probability import cam_to_probability

__all__ = ["OtsuCRFConfig", "OtsuCRFLabeler", "cam_to_probability", "dense_crf", "otsu_suppress"]
