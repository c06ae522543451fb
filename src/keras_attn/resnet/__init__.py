"""He et al. 2016's CIFAR ResNets (ResNet-20/32/44/56/110) with attention gates.

`AttentionResNet` builds one from a config (the keys of
`keras_attn.resnet.model.DEFAULT_CONFIG`); `keras_attn.build("resnet20")`,
``build("resnet56_eca")`` or ``build("resnet20", attention="cbam", sites=[7, 8, 9])`` are
the usual way.

Example:
>>> model = AttentionResNet({"depth": 8, "widths": [4, 8, 8]})
>>> model.get_layer("block2_shortcut").count_params()
0
"""

from keras_attn.resnet.model import AttentionResNet, block_sizes, stage_blocks
from keras_attn.resnet.shortcut import ZeroPadShortcut

__all__ = [
    "AttentionResNet",
    "ZeroPadShortcut",
    "block_sizes",
    "stage_blocks",
]
