"""Where does a model look? Grad-CAM for any model, and each attention gate as what it is.

`grad_cam` gives the class-activation heatmap of an image; `gate_parts` gives
each attention block's gate on it (channel weights, a spatial mask, or a
constant); `plot_attention_maps` draws both as a PNG; `mask_statistics` says
how much each gate varies over many images.
"""

from keras_attn.attention_maps.figure import plot_attention_maps
from keras_attn.attention_maps.gradcam import class_index_of, grad_cam, gradcam_layer
from keras_attn.attention_maps.masks import attention_maps, gate_parts
from keras_attn.attention_maps.sites import attention_layers
from keras_attn.attention_maps.statistics import format_mask_statistics, mask_statistics

__all__ = [
    "attention_layers",
    "attention_maps",
    "class_index_of",
    "format_mask_statistics",
    "gate_parts",
    "grad_cam",
    "gradcam_layer",
    "mask_statistics",
    "plot_attention_maps",
]
