"""The study's CNN backbone, with attention blocks at chosen insertion sites.

A model is described by a config: a JSON-able dict (see `DEFAULT_CONFIG`) that
says everything about the architecture. `validate_config` fills in defaults and
checks it, and `AttentionCNN` turns it into a functional ``keras.Model`` whose
``get_config`` is that dict, so a saved model reloads as the same class.

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

import copy
import math

import keras

from keras_attn._checks import check_input_shape, check_positive_int, check_sites, did_you_mean
from keras_attn._config_model import ConfigModel
from keras_attn.layers import max_depth
from keras_attn.layers import registry as gates

#: Every config key and its default. A config is this dict with some values changed.
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
    # Options of each attention block, passed to its layer.
    "eca": {"kernel_size": None, "gamma": 2, "b": 1},
    "cbam": {"reduction": 16, "spatial_kernel_size": 7, "momentum": 0.9, "epsilon": 1e-5},
    "cbam_channel": {"reduction": 16},
    "cbam_spatial": {"kernel_size": 7, "momentum": 0.9, "epsilon": 1e-5},
    # final_kernel: one int for every site, or a list with one entry per conv layer.
    "conv_ae": {"filters": [12, 24, 48], "final_kernel": 3, "activation": "relu"},
    "linear_ae": {"units": [128, 64, 12], "activation": "relu"},
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

#: Options a config may set that are absent from it unless set (their defaults are the
#: layers'), so configs written before these options existed stay the same.
OPTIONAL_OPTIONS = {
    "conv_ae": {"kernel_initializer": "glorot_uniform", "logit_scale": None},
    "constant": {"value": 0.5},
    # The gates from the literature (keras_attn.layers): their options, with the layers' defaults.
    "se": {"reduction": 16, "hidden": None, "divisor": 8},
    "gc": {"reduction": 8, "hidden": None, "divisor": 1, "epsilon": 1e-6, "zero_init_last": True},
    "coord": {"reduction": 32, "hidden": None, "min_hidden": 8, "momentum": 0.9, "epsilon": 1e-5},
    "simam": {"e_lambda": 1e-4},
}

ATTENTION_POSITIONS = ("pre_activation", "post_activation", "post_norm")
HEADS = ("softmax", "relu_softmax")


def _unknown_key_error(where, key, valid):
    return ValueError(
        f"Unknown {where} {key!r}.{did_you_mean(key, valid)} Valid: {', '.join(valid)}."
    )


def merge_config(base, overrides):
    """Return a copy of ``base`` with ``overrides`` applied; nested dicts are merged.

    Raises ``ValueError`` naming the valid keys for a key ``base`` does not have.

    Example:
    >>> merge_config(DEFAULT_CONFIG, {"conv_ae": {"filters": [8, 16]}})["conv_ae"]
    {'filters': [8, 16], 'final_kernel': 3, 'activation': 'relu'}
    """
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if key not in DEFAULT_CONFIG and key not in OPTIONAL_OPTIONS:
            raise _unknown_key_error(
                "config key (override)", key, [*DEFAULT_CONFIG, *OPTIONAL_OPTIONS]
            )
        default = DEFAULT_CONFIG.get(key, {})
        if isinstance(default, dict):
            options = {**default, **OPTIONAL_OPTIONS.get(key, {})}
            if not isinstance(value, dict):
                raise ValueError(
                    f"`{key}` must be a dict of options such as {options}, got {value!r}."
                )
            for sub in value:
                if sub not in options:
                    raise _unknown_key_error(f"`{key}` option", sub, list(options))
            merged[key] = {**merged.get(key, DEFAULT_CONFIG.get(key, {})), **copy.deepcopy(value)}
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _rate(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


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


def attention_sites(config):
    """The 1-based site indices that get attention under ``config``.

    Example:
    >>> attention_sites({**DEFAULT_CONFIG, "attention": ["eca"], "sites": [1, 3]})
    [1, 3]
    """
    if not config["attention"]:
        return []
    n = 2 * len(config["blocks"])
    return list(range(1, n + 1)) if config["sites"] == "all" else list(config["sites"])


def final_kernel_at(config, site):
    """The conv-autoencoder gate's final kernel at ``site`` (1-based).

    Example:
    >>> final_kernel_at({"conv_ae": {"final_kernel": [3, 3, 3, 2]}}, 4)
    2
    """
    k = config["conv_ae"]["final_kernel"]
    return k if isinstance(k, int) else k[site - 1]


def validate_config(config):
    """Check a model config and return a complete copy (defaults filled in).

    Every problem raises ``ValueError`` naming the key, the value received and
    what is valid.

    Args:
        config: dict, a (possibly partial) config; missing keys take
            `DEFAULT_CONFIG`'s values.

    Returns:
        A new, complete config dict.

    Example:
    >>> validate_config({"attention": ["eca"], "sites": [1]})["sites"]
    [1]
    """
    if not isinstance(config, dict):
        raise ValueError(f"A model config must be a dict, got {type(config).__name__}.")
    config = merge_config(DEFAULT_CONFIG, config)
    config["input_shape"] = check_input_shape(config["input_shape"])
    check_positive_int("num_classes", config["num_classes"])
    if not isinstance(config["blocks"], (list, tuple)) or not config["blocks"]:
        raise ValueError(
            f"`blocks` must be a non-empty list of filter counts, got {config['blocks']!r}."
        )
    for f in config["blocks"]:
        check_positive_int("blocks entries (filters per block)", f)
    config["blocks"] = list(config["blocks"])
    check_positive_int("dense_units", config["dense_units"])
    _rate("dropout", config["dropout"])
    _rate("spatial_dropout", config["spatial_dropout"])
    _rate("bn_momentum", config["bn_momentum"])
    eps = config["bn_epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"`bn_epsilon` must be a positive number, got {eps!r}.")
    if config["head"] not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}, got {config['head']!r}.")
    if config["attention_position"] not in ATTENTION_POSITIONS:
        raise ValueError(
            f"`attention_position` must be one of {ATTENTION_POSITIONS}, "
            f"got {config['attention_position']!r}."
        )
    scale = config["pixel_scale"]
    if scale is not None and (not isinstance(scale, (int, float)) or not scale > 0):
        raise ValueError(f"`pixel_scale` must be a positive number or None, got {scale!r}.")

    attention = config["attention"]
    if isinstance(attention, str):
        attention = [attention]
    for kind in attention:
        if kind not in gates.GATES:
            raise _unknown_key_error("attention block", kind, list(gates.GATES))
    config["attention"] = list(attention)

    sizes = site_sizes(config)
    n_sites = len(sizes)
    sites = config["sites"]
    if sites != "all":
        scope = f"this network ({len(config['blocks'])} blocks)"
        config["sites"] = check_sites(sites, n_sites, noun="site", scope=scope)

    conv_ae = config["conv_ae"]
    k = conv_ae["final_kernel"]
    if isinstance(k, (list, tuple)):
        if len(k) != n_sites:
            raise ValueError(
                f"`conv_ae.final_kernel` is a list of {len(k)} but this network has {n_sites} "
                f"sites: give one int for all sites or one per site."
            )
        for v in k:
            check_positive_int("conv_ae.final_kernel entries", v)
        conv_ae["final_kernel"] = list(k)
    else:
        check_positive_int("conv_ae.final_kernel", k)
    for key in ("filters",):
        conv_ae[key] = (
            list(conv_ae[key]) if isinstance(conv_ae[key], (list, tuple)) else conv_ae[key]
        )
    config["linear_ae"]["units"] = (
        list(config["linear_ae"]["units"])
        if isinstance(config["linear_ae"]["units"], (list, tuple))
        else config["linear_ae"]["units"]
    )

    if "conv_ae" in config["attention"]:
        depth = len(conv_ae["filters"]) if isinstance(conv_ae["filters"], list) else 0
        too_small = [
            (site, *sizes[site - 1][:2])
            for site in attention_sites(config)
            if depth > max_depth(min(sizes[site - 1][:2]))
        ]
        if too_small:
            where = ", ".join(f"site {site} ({h}x{w})" for site, h, w in too_small)
            allowed = min(max_depth(min(h, w)) for _, h, w in too_small)
            raise ValueError(
                f"The conv autoencoder gate is too deep for {where}: depth {depth} "
                f"(filters={conv_ae['filters']}) needs a feature map of at least "
                f"{2**depth}x{2**depth}. Use at most {allowed} stages there, or leave "
                f"{'that site' if len(too_small) == 1 else 'those sites'} out of `sites`."
            )
    # Let the layers check their own arguments (widths, activations) now, not mid-build.
    for kind in config["attention"]:
        gates.get(kind, **_layer_kwargs(config, kind, attention_sites(config)[0]))
    return config


def _layer_kwargs(config, kind, site):
    kwargs = dict(config.get(kind, {}))
    if kind == "conv_ae":
        kwargs["final_kernel"] = final_kernel_at(config, site)
    return kwargs


@keras.saving.register_keras_serializable(package="keras_attn")
class AttentionCNN(ConfigModel):
    """The study's CNN with attention blocks, built from a config.

    A functional ``keras.Model``: ``model.config`` is the complete config it was
    built from, and ``get_config`` returns it, so ``.keras`` files reload as
    this class. Prefer `keras_attn.build`, which also takes registry names.

    Layer names say where things are: ``block1_conv_a``, ``site1_eca``,
    ``site3_conv_ae``... (sites numbered from 1 in network order).

    Args:
        config: dict, a model config (see `DEFAULT_CONFIG`); validated.
        **kwargs: passed to ``keras.Model`` (e.g. ``name``).

    Example:
    >>> model = AttentionCNN({"attention": ["eca"]})
    >>> model.output_shape
    (None, 10)
    """

    def __init__(self, config, **kwargs):
        config = validate_config(config)
        inputs = keras.Input(tuple(config["input_shape"]), name="pixels")
        x = inputs
        if config["pixel_scale"] is not None:
            x = keras.layers.Rescaling(1.0 / config["pixel_scale"], name="rescale")(x)
        sites = set(attention_sites(config))
        position = config["attention_position"]
        site = 0
        for b, filters in enumerate(config["blocks"], start=1):
            for part, padding in (("a", "same"), ("b", "valid")):
                site += 1
                x = keras.layers.Conv2D(filters, 3, padding=padding, name=f"block{b}_conv_{part}")(
                    x
                )
                if position == "pre_activation" and site in sites:
                    x = self._attend(x, config, site)
                x = keras.layers.ReLU(name=f"block{b}_relu_{part}")(x)
                if position == "post_activation" and site in sites:
                    x = self._attend(x, config, site)
                x = keras.layers.BatchNormalization(
                    momentum=config["bn_momentum"],
                    epsilon=config["bn_epsilon"],
                    name=f"block{b}_norm_{part}",
                )(x)
                if position == "post_norm" and site in sites:
                    x = self._attend(x, config, site)
            x = keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
            x = keras.layers.SpatialDropout2D(config["spatial_dropout"], name=f"block{b}_drop")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(config["dense_units"], activation="relu", name="dense")(x)
        x = keras.layers.Dropout(config["dropout"], name="dropout")(x)
        x = keras.layers.Dense(config["num_classes"], name="logits")(x)
        if config["head"] == "relu_softmax":
            x = keras.layers.ReLU(name="logits_relu")(x)
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        kwargs.setdefault("name", config["name"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config

    @staticmethod
    def _attend(x, config, site):
        for kind in config["attention"]:
            layer = gates.get(kind, name=f"site{site}_{kind}", **_layer_kwargs(config, kind, site))
            x = layer(x)
        return x

    @property
    def attention_layers(self):
        """``[(site, layer), ...]`` for every attention layer, in network order."""
        found = []
        for layer in self.layers:
            if isinstance(layer, tuple(gates.GATES.values())):
                found.append((int(layer.name.split("_")[0][4:]), layer))
        return found


def count_trainable_params(model):
    """Number of trainable scalars in ``model`` (BatchNorm moving stats excluded).

    Example:
    >>> count_trainable_params(AttentionCNN({}))
    2625866
    """
    return int(sum(math.prod(w.shape) for w in model.trainable_weights))
