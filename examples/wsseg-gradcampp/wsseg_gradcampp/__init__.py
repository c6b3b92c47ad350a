"""wsseg-gradcampp: the ``gradcam-pp`` CAM generator, an example third-party wsseg plugin.

It trains the same classifier as the built-in ``drn-attention`` generator and explains it with
Grad-CAM++ (Chattopadhyay et al. 2018) instead of the class activation map of its last layer.
"""

from wsseg_gradcampp.generator import GradCAMPlusPlus, GradCAMPlusPlusConfig
from wsseg_gradcampp.gradcampp import grad_cam_plus_plus

__all__ = ["GradCAMPlusPlus", "GradCAMPlusPlusConfig", "grad_cam_plus_plus"]
