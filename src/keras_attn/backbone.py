"""The study's CNN backbone, with attention blocks at chosen insertion sites.

A model is described by a config (`keras_attn._config_model`): `DEFAULT_CONFIG`'s
keys, and each gate's options under its name. `AttentionCNN` checks it and turns it
into a functional ``keras.Model`` whose ``get_config`` holds it, so a saved model
reloads as the same class.

The network (docs/study.md): per block, a 3x3 "same" convolution and a 3x3
"valid" convolution, each followed by ReLU then BatchNorm; then 2x2 max pooling
and spatial dropout. Every convolution is an insertion site, numbered from 1 in
order (four in the two-block network, six in the three-block one). By default
attention acts on the raw convolution output, before the ReLU; with several
blocks at one site they apply in the order given. Head: flatten, dense 512,
ReLU, dropout 0.5, dense to the classes, softmax.

Models take raw pixel values (0-255) and rescale them themselves
(``pixel_scale``), so training code, exported models and users all feed the
same thing.
"""

import math

import keras

from keras_attn._checks import check_positive_int, check_rate, check_widths, one_of
from keras_attn._config_model import ConfigModel

#: Every config key and its default, but the gates' options: each gate in ``attention``
#: has them under its name, completed from the gate's defaults (``"conv_ae"``:
#: ``{"filters": [12, 24, 48], "final_kernel": 3, ...}``, ``final_kernel`` one int or one
#: per site).
DEFAULT_CONFIG = {
    "name": "cnn",
    "input_shape": [32, 32, 3],
    "num_classes": 10,
    # Filters of each conv block (two 3x3 convolutions each): [64, 128] is the study's CNN.
    "blocks": [64, 128],
    # Attention blocks applied at each site, in order, e.g. ["eca", "conv_ae"].
    "attention": [],
    # Sites (1-based conv layer indices) that get the attention blocks, or "all".
    "sites": "all",
    # Where attention acts: on the conv output (the study), after its ReLU, or after BatchNorm.
    "attention_position": "pre_activation",
    "dense_units": 512,
    "dropout": 0.5,
    "spatial_dropout": 0.25,
    # BatchNorm after every conv: PyTorch's defaults (the study's framework), in Keras'
    # convention (PyTorch momentum 0.1 = Keras 0.9). Keras' own default, 0.99, lags behind
    # in short runs: on the smoke subset it halved validation accuracy after 2 epochs.
    "bn_momentum": 0.9,
    "bn_epsilon": 1e-5,
    # "softmax": logits to softmax. "relu_softmax": the study's code, ReLU on the logits first.
    "head": "softmax",
    # Inputs are divided by this (pixel values 0-255 -> 0-1); null feeds them unchanged.
    "pixel_scale": 255.0,
}

ATTENTION_POSITIONS = ("pre_activation", "post_activation", "post_norm")
HEADS = ("softmax", "relu_softmax")


def site_sizes(config):
    """Feature-map ``(height, width, channels)`` seen at each site, in site order.

    Raises ``ValueError`` if the input is too small for the number of blocks.

    Example:
    >>> site_sizes(DEFAULT_CONFIG)
    [(32, 32, 64), (30, 30, 64), (15, 15, 128), (13, 13, 128)]
    """
    h, w = config["input_shape"][:2]
    sizes = []
    for i, filters in enumerate(config["blocks"]):
        sizes.append((h, w, filters))  # conv a, padding "same"
        h, w = h - 2, w - 2  # conv b, padding "valid"
        sizes.append((h, w, filters))
        h, w = h // 2, w // 2  # max pooling
        if min(h, w) < 1:
            raise ValueError(
                f"Input shape {tuple(config['input_shape'])} is too small for "
                f"{len(config['blocks'])} conv blocks: block {i + 1} leaves a {h}x{w} map. "
                f"Use a larger input or fewer blocks."
            )
    return sizes


@keras.saving.register_keras_serializable(package="keras_attn")
class AttentionCNN(ConfigModel):
    """The study's CNN with attention blocks, built from a config.

    A functional ``keras.Model``: ``model.model_config`` is the complete config it
    was built from, and ``get_config`` returns it, so ``.keras`` files reload as
    this class. Prefer `keras_attn.build`, which also takes registry names.

    Layer names say where things are: ``block1_conv_a``, ``site1_eca``,
    ``site3_conv_ae``... (sites numbered from 1 in network order).

    Args:
        config: dict, a model config (`DEFAULT_CONFIG`'s keys, gate options under the
            gate's name); checked by `check_config`.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Example:
    >>> model = AttentionCNN({"attention": ["eca"]})
    >>> model.output_shape, model.model_config["eca"]
    ((None, 10), {'kernel_size': None, 'gamma': 2, 'b': 1})
    """

    DEFAULT_CONFIG = DEFAULT_CONFIG
    CHECKS = {
        **ConfigModel.CHECKS,
        "blocks": check_widths,
        "attention_position": one_of(*ATTENTION_POSITIONS),
        "dense_units": check_positive_int,
        "dropout": check_rate,
        "spatial_dropout": check_rate,
        "head": one_of(*HEADS),
    }
    KIND = "the study's CNN"
    site_sizes = staticmethod(site_sizes)

    @classmethod
    def body(cls, x, config):
        sites = set(cls.attention_sites(config))
        position = config["attention_position"]
        site = 0
        for b, filters in enumerate(config["blocks"], start=1):
            for part, padding in (("a", "same"), ("b", "valid")):
                site += 1
                x = keras.layers.Conv2D(filters, 3, padding=padding, name=f"block{b}_conv_{part}")(
                    x
                )
                if position == "pre_activation" and site in sites:
                    x = cls._attend(x, config, site)
                x = keras.layers.ReLU(name=f"block{b}_relu_{part}")(x)
                if position == "post_activation" and site in sites:
                    x = cls._attend(x, config, site)
                x = keras.layers.BatchNormalization(
                    momentum=config["bn_momentum"],
                    epsilon=config["bn_epsilon"],
                    name=f"block{b}_norm_{part}",
                )(x)
                if position == "post_norm" and site in sites:
                    x = cls._attend(x, config, site)
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
            x = keras.layers.SpatialDropout2D(config["spatial_dropout"], name=f"block{b}_drop")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(config["dense_units"], activation="relu", name="dense")(x)
        x = keras.layers.Dropout(config["dropout"], name="dropout")(x)
        x = keras.layers.Dense(config["num_classes"], name="logits")(x)
        if config["head"] == "relu_softmax":
            x = keras.layers.ReLU(name="logits_relu")(x)
        return x


def count_trainable_params(model):
    """Number of trainable scalars in ``model`` (BatchNorm moving stats excluded).

    Example:
    >>> count_trainable_params(AttentionCNN({}))
    2625866
    """
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
