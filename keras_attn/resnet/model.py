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
"""

import keras

from keras_attn._config_model import ConfigModel
from keras_attn.resnet.config import (
    attention_sites,
    gate_names,
    make_gate,
    stage_blocks,
    validate_config,
)
from keras_attn.resnet.shortcut import ZeroPadShortcut


@keras.saving.register_keras_serializable(package="keras_attn")
class AttentionResNet(ConfigModel):
    """A CIFAR ResNet (option A shortcuts) with attention gates, built from a config.

    A functional ``keras.Model``: ``model.model_config`` is the complete config
    it was built from (see `keras_attn.resnet.config.DEFAULT_CONFIG`) and
    ``get_config`` returns it, so ``.keras`` files reload as this class. Prefer
    `keras_attn.build` (``build("resnet56_eca")``).

    Layer names: ``stem_conv``, ``block3_conv_a``, ``block3_bn_b``,
    ``site3_eca`` (the gate of residual block 3), ``block4_shortcut``,
    ``block4_add``, ``block4_out``... (blocks numbered from 1 in network order).

    Args:
        config: dict, a ResNet config; validated.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Example:
    >>> model = AttentionResNet({"depth": 8, "widths": [4, 8, 8], "attention": ["eca"]})
    >>> model.output_shape, [site for site, _ in model.attention_layers]
    ((None, 10), [1, 2, 3])
    """

    def __init__(self, config, **kwargs):
        config = validate_config(config)
        init = config["kernel_initializer"]

        def conv(filters, strides, name):
            return keras.layers.Conv2D(
                filters,
                3,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_initializer=init,
                name=name,
            )

        def norm(name):
            return keras.layers.BatchNormalization(
                momentum=config["bn_momentum"], epsilon=config["bn_epsilon"], name=name
            )

        inputs = keras.Input(tuple(config["input_shape"]), name="pixels")
        x = inputs
        if config["pixel_scale"] is not None:
            x = keras.layers.Rescaling(1.0 / config["pixel_scale"], name="rescale")(x)
        x = conv(config["widths"][0], 1, "stem_conv")(x)
        x = norm("stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        sites = set(attention_sites(config))
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
                    for kind in config["attention"]:
                        y = make_gate(kind, name=f"site{block}_{kind}", **config[kind])(y)
                shortcut = x
                if strides != 1 or x.shape[-1] != width:
                    shortcut = ZeroPadShortcut(width, strides, name=f"{b}_shortcut")(x)
                x = keras.layers.Add(name=f"{b}_add")([y, shortcut])
                x = keras.layers.ReLU(name=f"{b}_out")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dense(config["num_classes"], name="logits")(x)
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        kwargs.setdefault("name", config["name"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config

    @property
    def attention_layers(self):
        """``[(site, layer), ...]`` for every gate, in network order (site = block number)."""
        kinds = tuple(set(gate_names()))
        return [
            (int(layer.name.split("_")[0][4:]), layer)
            for layer in self.layers
            if layer.name.startswith("site") and layer.name.partition("_")[2] in kinds
        ]
