"""The CIFAR ResNets' configs: `DEFAULT_CONFIG`, `merge_config`, `validate_config`.

A ResNet config is a JSON-able dict whose ``"backbone"`` is ``"resnet"`` (the
study's CNN configs have no ``"backbone"`` key, so theirs stay as they were).
``depth`` is ``2 * stages * n + 2`` (``6n + 2`` with the three stages of He et
al. 2016: 20, 32, 44, 56, 110); ``sites`` are 1-based residual block numbers.
Every gate in ``attention`` has its options under its own name, completed from
the gate's own defaults, so a config says everything about the model.

Example:
>>> config = validate_config({"depth": 20, "attention": "eca", "sites": [1, 9]})
>>> config["backbone"], config["sites"], config["eca"]
('resnet', [1, 9], {'kernel_size': None, 'gamma': 2, 'b': 1})
"""

import copy

from keras_attn import layers as gate_layers
from keras_attn._checks import check_input_shape, check_positive_int, check_sites, did_you_mean

#: Every key of a ResNet config and its default (gate options come under the gate's name).
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

#: Keys of the study's CNN that a ResNet does not have.
CNN_ONLY_KEYS = (
    "blocks",
    "attention_position",
    "dense_units",
    "dropout",
    "spatial_dropout",
    "head",
)

#: Kernel initializers a ResNet config accepts (Keras names).
KERNEL_INITIALIZERS = (
    "he_normal",
    "he_uniform",
    "glorot_uniform",
    "glorot_normal",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
)

# Arguments every Keras layer has: not gate options.
_BASE_LAYER_KEYS = ("name", "trainable", "dtype")


def gate_names():
    """The names of the registered gates (``keras_attn.layers``).

    Example:
    >>> "eca" in gate_names()
    True
    """
    return list(gate_layers.list_gates())


def make_gate(kind, **options):
    """A new gate layer by registered name, with ``options`` (and ``name=``, ...).

    Example:
    >>> make_gate("eca", kernel_size=3).kernel_size
    3
    """
    return gate_layers.get(kind, **options)


def _unknown_key(key):
    if key in CNN_ONLY_KEYS:
        return ValueError(
            f"`{key}` is a key of the study's CNN, not of a ResNet config (backbone "
            f"'resnet'). ResNet keys: {', '.join(DEFAULT_CONFIG)}, and a gate's name for "
            "its options."
        )
    valid = [*DEFAULT_CONFIG, *gate_names()]
    return ValueError(
        f"Unknown ResNet config key {key!r}.{did_you_mean(key, valid)} Valid: "
        f"{', '.join(DEFAULT_CONFIG)}, and a gate's name for its options "
        f"({', '.join(gate_names())})."
    )


def merge_config(base, overrides):
    """A copy of ``base`` with ``overrides`` applied; a gate's options dict is merged.

    Example:
    >>> merge_config({"cbam": {"reduction": 8}}, {"cbam": {"spatial_kernel_size": 3}})
    {'cbam': {'reduction': 8, 'spatial_kernel_size': 3}}
    """
    merged = copy.deepcopy(base)
    gates = gate_names()
    for key, value in overrides.items():
        if key in gates:
            if not isinstance(value, dict):
                raise ValueError(f"`{key}` must be a dict of that gate's options, got {value!r}.")
            merged[key] = {**merged.get(key, {}), **copy.deepcopy(value)}
        elif key in DEFAULT_CONFIG:
            merged[key] = copy.deepcopy(value)
        else:
            raise _unknown_key(key)
    return merged


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


def attention_sites(config):
    """The 1-based residual blocks that get the gates under ``config``.

    Example:
    >>> attention_sites({**DEFAULT_CONFIG, "attention": ["eca"], "sites": "all"})[-1]
    9
    """
    if not config["attention"]:
        return []
    n = len(config["widths"]) * stage_blocks(config)
    return list(range(1, n + 1)) if config["sites"] == "all" else list(config["sites"])


def _check_number(name, value, *, below_one=False):
    """``value`` must be a number > 0, or in [0, 1) with ``below_one``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    ok = ok and (0 <= value < 1 if below_one else value > 0)
    if not ok:
        raise ValueError(
            f"`{name}` must be a number {'in [0, 1)' if below_one else '> 0'}, got {value!r}."
        )


def _gate_options(kind, options):
    """The gate's complete options (its constructor's arguments, defaults filled in)."""
    layer = make_gate(kind, **options)
    full = layer.get_config()
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in full.items()
        if k not in _BASE_LAYER_KEYS
    }


def _check_sites(config, n_blocks):
    sites = config["sites"]
    if sites == "all":
        return
    scope = f"this ResNet (depth {config['depth']})"
    config["sites"] = check_sites(sites, n_blocks, noun="residual block", scope=scope)


def _check_conv_ae_fits(config, sizes):
    filters = config["conv_ae"]["filters"]
    depth = len(filters)
    too_small = [
        (site, *sizes[site - 1][:2])
        for site in attention_sites(config)
        if depth > gate_layers.max_depth(min(sizes[site - 1][:2]))
    ]
    if too_small:
        where = ", ".join(f"block {s} ({h}x{w})" for s, h, w in too_small[:3])
        more = f" and {len(too_small) - 3} more" if len(too_small) > 3 else ""
        allowed = min(gate_layers.max_depth(min(h, w)) for _, h, w in too_small)
        raise ValueError(
            f"The conv autoencoder gate is too deep for {where}{more}: depth {depth} "
            f"(filters={filters}) needs a feature map of at least {2**depth}x{2**depth}. "
            f"Use at most {allowed} stages (conv_ae={{'filters': [...]}}), a larger input, "
            "or leave those blocks out of `sites`."
        )


def validate_config(config):
    """Check a ResNet config and return a complete copy (defaults filled in).

    Every problem raises ``ValueError`` naming the key, the value received and
    what is valid.

    Args:
        config: dict, a (possibly partial) ResNet config; missing keys take
            `DEFAULT_CONFIG`'s values (``"backbone"`` may be left out).

    Returns:
        A new, complete config dict.

    Example:
    >>> validate_config({"depth": 32})["widths"]
    [16, 32, 64]
    """
    if not isinstance(config, dict):
        raise ValueError(f"A model config must be a dict, got {type(config).__name__}.")
    config = merge_config(DEFAULT_CONFIG, config)
    if config["backbone"] != "resnet":
        raise ValueError(f"A ResNet config has backbone 'resnet', got {config['backbone']!r}.")
    if not isinstance(config["name"], str) or not config["name"]:
        raise ValueError(f"`name` must be a non-empty string, got {config['name']!r}.")
    config["input_shape"] = check_input_shape(config["input_shape"])
    check_positive_int("num_classes", config["num_classes"])
    widths = config["widths"]
    if not isinstance(widths, (list, tuple)) or not widths:
        raise ValueError(f"`widths` must be a non-empty list of channel counts, got {widths!r}.")
    for f in widths:
        check_positive_int("widths entries (channels per stage)", f)
    config["widths"] = list(widths)
    sizes = block_sizes(config)  # checks depth
    _check_number("bn_momentum", config["bn_momentum"], below_one=True)
    _check_number("bn_epsilon", config["bn_epsilon"])
    if config["kernel_initializer"] not in KERNEL_INITIALIZERS:
        raise ValueError(
            f"`kernel_initializer` must be one of {', '.join(KERNEL_INITIALIZERS)}, "
            f"got {config['kernel_initializer']!r}."
        )
    if config["pixel_scale"] is not None:
        _check_number("pixel_scale", config["pixel_scale"])

    attention = config["attention"]
    attention = [attention] if isinstance(attention, str) else attention
    if not isinstance(attention, (list, tuple)):
        raise ValueError(f"`attention` must be a gate name or a list of them, got {attention!r}.")
    for kind in attention:
        gate_layers.check_name(kind)
    if len(set(attention)) != len(attention):
        raise ValueError(f"`attention` lists a gate twice: {list(attention)}.")
    config["attention"] = list(attention)
    _check_sites(config, len(sizes))
    for kind in gate_names():
        if kind in config["attention"] or kind in config:
            config[kind] = _gate_options(kind, config.get(kind, {}))
    if "conv_ae" in config["attention"]:
        _check_conv_ae_fits(config, sizes)
    return config
