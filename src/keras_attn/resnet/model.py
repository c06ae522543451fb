"""`AttentionResNet`: He et al. 2016's CIFAR ResNet with a gate in chosen residual blocks.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section
4.2. https://arxiv.org/abs/1512.03385

The network: a 3x3 convolution (no bias) to the first stage's width,
BatchNorm, ReLU; then ``n`` basic blocks per stage (two 3x3 convolutions
without bias, each followed by BatchNorm, a ReLU after the first; the
shortcut added; a ReLU), the first block of every stage after the first with
stride 2 and the parameter-free shortcut of option A (`ZeroPadShortcut`);
global average pooling, a dense layer to the classes, softmax. Gates sit in
the residual branch after its last BatchNorm, before the add (timm's place for
``attn_layer``), in the order ``attention`` gives.

A ResNet config has ``"backbone": "resnet"``; ``depth`` is ``2 * stages * n + 2``
(``6n + 2`` with three stages: 20, 32, 44, 56, 110); ``sites`` are 1-based
residual block numbers.
"""

import keras

from keras_attn._checks import check_widths, one_of
from keras_attn._config_model import ConfigModel
from keras_attn.layers.conv_ae import KERNEL_INITIALIZERS
from keras_attn.resnet.shortcut import ZeroPadShortcut

#: Every key of a ResNet config and its default, but the gates' options (under each
#: gate's name, completed from the gate's defaults).
DEFAULT_CONFIG = {
    "name": "resnet20",
    "backbone": "resnet",
    "input_shape": [32, 32, 3],
    "num_classes": 10,
    # 2 * len(widths) * n + 2 layers with weights: n basic blocks per stage.
    "depth": 20,
    # Channels of each stage; every stage after the first halves height and width.
    "widths": [16, 32, 64],
    # Gates in every chosen residual block (after its last BatchNorm, before the add).
    "attention": [],
    # Residual blocks (1-based, network order) that get the gates, or "all".
    "sites": "all",
    # BatchNorm: PyTorch's defaults in Keras' convention, as in the study's CNN.
    "bn_momentum": 0.9,
    "bn_epsilon": 1e-5,
    # He et al. 2016 initialise as He et al. 2015 ("he_normal").
    "kernel_initializer": "he_normal",
    # Inputs are divided by this (pixel values 0-255 -> 0-1); null feeds them unchanged.
    "pixel_scale": 255.0,
}


def stage_blocks(config):
    """Residual blocks per stage, ``n``, from ``depth`` and the number of stages.

    Example:
    >>> stage_blocks({"depth": 56, "widths": [16, 32, 64]})
    9
    """
    depth, stages = config["depth"], len(config["widths"])
    step = 2 * stages
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < step + 2
        or (depth - 2) % step
    ):
        examples = ", ".join(str(step * n + 2) for n in (1, 3, 5, 9))
        raise ValueError(
            f"`depth` must be {step}n + 2 for {stages} stages (n >= 1 blocks per stage: "
            f"{examples}, ...), got {depth!r}."
        )
    return (depth - 2) // step


def block_sizes(config):
    """Feature-map ``(height, width, channels)`` each residual block outputs, in order.

    A stage after the first starts with a stride-2 block: ``ceil(size / 2)``.

    Example:
    >>> sizes = block_sizes(DEFAULT_CONFIG)
    >>> len(sizes), sizes[0], sizes[3], sizes[-1]
    (9, (32, 32, 16), (16, 16, 32), (8, 8, 64))
    """
    h, w = config["input_shape"][:2]
    n = stage_blocks(config)
    sizes = []
    for stage, width in enumerate(config["widths"]):
        if stage:
            h, w = -(-h // 2), -(-w // 2)
        sizes += [(h, w, width)] * n
    return sizes


@keras.saving.register_keras_serializable(package="keras_attn")
class AttentionResNet(ConfigModel):
    """A CIFAR ResNet (option A shortcuts) with attention gates, built from a config.

    A functional ``keras.Model``: ``model.model_config`` is the complete config
    it was built from (`DEFAULT_CONFIG`'s keys, gate options under the gate's
    name) and ``get_config`` returns it, so ``.keras`` files reload as this
    class. Prefer `keras_attn.build` (``build("resnet56_eca")``).

    Layer names: ``stem_conv``, ``block3_conv_a``, ``block3_bn_b``,
    ``site3_eca`` (the gate of residual block 3), ``block4_shortcut``,
    ``block4_add``, ``block4_out``... (blocks numbered from 1 in network order).

    Args:
        config: dict, a ResNet config (``"backbone"`` may be left out); checked by
            `check_config`.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Example:
    >>> model = AttentionResNet({"depth": 8, "widths": [4, 8, 8], "attention": ["eca"]})
    >>> model.output_shape, [site for site, _ in model.attention_layers]
    ((None, 10), [1, 2, 3])
    """

    DEFAULT_CONFIG = DEFAULT_CONFIG
    CHECKS = {
        **ConfigModel.CHECKS,
        "widths": check_widths,
        "kernel_initializer": one_of(*KERNEL_INITIALIZERS),
    }
    KIND = "the ResNet"
    SITE_NOUN = "block"
    site_sizes = staticmethod(block_sizes)

    @classmethod
    def body(cls, x, config):
        def conv(filters, strides, name):
            return keras.layers.Conv2D(
                filters,
                3,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_initializer=config["kernel_initializer"],
                name=name,
            )

        def norm(name):
            return keras.layers.BatchNormalization(
                momentum=config["bn_momentum"], epsilon=config["bn_epsilon"], name=name
            )

        x = conv(config["widths"][0], 1, "stem_conv")(x)
        x = norm("stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        sites = set(cls.attention_sites(config))
        block = 0
        for stage, width in enumerate(config["widths"]):
            for i in range(stage_blocks(config)):
                block += 1
                strides = 2 if stage and not i else 1
                b = f"block{block}"
                y = conv(width, strides, f"{b}_conv_a")(x)
                y = norm(f"{b}_bn_a")(y)
                y = keras.layers.ReLU(name=f"{b}_relu_a")(y)
                y = conv(width, 1, f"{b}_conv_b")(y)
                y = norm(f"{b}_bn_b")(y)
                if block in sites:
                    y = cls._attend(y, config, block)
                shortcut = x
                if strides != 1 or x.shape[-1] != width:
                    shortcut = ZeroPadShortcut(width, strides, name=f"{b}_shortcut")(x)
                x = keras.layers.Add(name=f"{b}_add")([y, shortcut])
                x = keras.layers.ReLU(name=f"{b}_out")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return keras.layers.Dense(config["num_classes"], name="logits")(x)
