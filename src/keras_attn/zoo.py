"""The registry: named variants, each a config, and `build`.

A variant is data: a description and the config keys where it differs from
the defaults of its backbone: the study's CNN (`keras_attn.backbone.DEFAULT_CONFIG`,
configs without a ``"backbone"`` key) or a CIFAR ResNet
(`keras_attn.resnet.model.DEFAULT_CONFIG`, ``"backbone": "resnet"``). `build` turns a
name (plus overrides) or a full config into a model, so the protocol, the tuner
and export never special-case a variant. Registering a new variant is one
`register` call.
"""

import copy
import fnmatch

from keras_attn._checks import did_you_mean
from keras_attn.backbone import AttentionCNN
from keras_attn.resnet import AttentionResNet

# The study fixed the last transposed convolution per site: kernel 3 at sites 1-3, 2 at site 4.
_STUDY_CONV_AE = {"final_kernel": [3, 3, 3, 2]}

VARIANTS = {
    "cnn": {
        "description": "Two-block CNN, no attention (the study's baseline).",
        "config": {},
    },
    "cnn3": {
        "description": "Three-block CNN, no attention (the real deeper network; the study's "
        "'deeper CNN' results came from the two-block one).",
        "config": {"blocks": [64, 128, 256]},
    },
    "cnn_eca": {
        "description": "ECA channel attention after every conv layer.",
        "config": {"attention": ["eca"]},
    },
    "cnn_cbam": {
        "description": "CBAM (channel then spatial gate) after every conv layer.",
        "config": {"attention": ["cbam"]},
    },
    "cnn_cbam_spatial_eca": {
        "description": "ECA, then CBAM's spatial gate, after every conv layer.",
        "config": {"attention": ["eca", "cbam_spatial"]},
    },
    "cnn_conv_ae": {
        "description": "Convolutional autoencoder gate (element-wise mask) after every conv layer.",
        "config": {"attention": ["conv_ae"], "conv_ae": _STUDY_CONV_AE},
    },
    "cnn_conv_ae_eca": {
        "description": "ECA, then the convolutional autoencoder gate, after every conv layer.",
        "config": {"attention": ["eca", "conv_ae"], "conv_ae": _STUDY_CONV_AE},
    },
    "cnn_linear_ae": {
        "description": "Linear (width-axis) autoencoder gate after every conv layer.",
        "config": {"attention": ["linear_ae"]},
    },
    "cnn_linear_ae_eca": {
        "description": "ECA, then the linear autoencoder gate, after every conv layer.",
        "config": {"attention": ["eca", "linear_ae"]},
    },
}

#: The study's nine variants (`register` adds to VARIANTS, never to this).
STUDY_VARIANTS = tuple(VARIANTS)

# Does the conv-AE gate attend? Two variants beyond the study put it to the test.
VARIANTS["cnn_conv_ae_const"] = {
    "description": "Ablation of cnn_conv_ae: a constant 0.5 mask where its gate sits, no "
    "parameters.",
    "config": {"attention": ["constant"]},
}
VARIANTS["cnn_conv_ae_he"] = {
    "description": "cnn_conv_ae whose gate can learn a sharper mask: He-initialised "
    "convolutions and a learnable scale on the logits.",
    "config": {
        "attention": ["conv_ae"],
        "conv_ae": {**_STUDY_CONV_AE, "kernel_initializer": "he_normal", "logit_scale": 1.0},
    },
}

# He et al. 2016's CIFAR ResNets (option A shortcuts), and a gate in every residual block.
for _depth in (20, 32, 44, 56, 110):
    VARIANTS[f"resnet{_depth}"] = {
        "description": f"CIFAR ResNet-{_depth} (He et al. 2016, option A shortcuts), no attention.",
        "config": {"backbone": "resnet", "depth": _depth},
    }
for _depth, _kind, _what in (
    (20, "se", "squeeze-and-excitation"),
    (20, "eca", "ECA"),
    (20, "cbam", "CBAM"),
    (20, "conv_ae", "the convolutional autoencoder gate"),
    (56, "eca", "ECA"),
):
    VARIANTS[f"resnet{_depth}_{_kind}"] = {
        "description": f"ResNet-{_depth} with {_what} in every residual block (after its last "
        "BatchNorm, before the add).",
        "config": {"backbone": "resnet", "depth": _depth, "attention": [_kind]},
    }

#: The model class of each backbone a config can name (``"backbone"``; absent: ``"cnn"``).
BACKBONES = {"cnn": AttentionCNN, "resnet": AttentionResNet}


def _model_class(config):
    if not isinstance(config, dict):
        raise ValueError(f"A model config must be a dict, got {type(config).__name__}.")
    kind = config.get("backbone", "cnn")
    if kind not in BACKBONES:
        raise ValueError(
            f"Unknown backbone {kind!r}.{did_you_mean(kind, BACKBONES)} Valid: "
            f'{", ".join(BACKBONES)} (no "backbone" key: the study\'s CNN).'
        )
    return BACKBONES[kind]


def _merged(name_or_config, overrides):
    """The model class and the unchecked config of a name or config with ``overrides``.

    A gate's options dict is merged into the one it overrides; other keys are replaced.
    """
    if isinstance(name_or_config, dict):
        config = copy.deepcopy(name_or_config)
    else:
        name = _check_name(name_or_config)
        config = {**copy.deepcopy(VARIANTS[name]["config"]), "name": name}
    cls = _model_class(config)
    backbone = config.get("backbone", "cnn")
    if overrides.get("backbone", backbone) != backbone:
        raise ValueError(
            f"Cannot override `backbone` ({backbone!r} -> {overrides['backbone']!r}): build "
            "the other backbone by its own name or config."
        )
    for key, value in copy.deepcopy(overrides).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            value = {**config[key], **value}
        config[key] = value
    return cls, config


def register(name, config, description):
    """Add a named variant to the registry.

    Args:
        name: str, the new variant's name (must not exist yet).
        config: dict, the config keys where it differs from the defaults.
        description: str, one line.

    Example:
    >>> register("cnn_eca_first_block", {"attention": ["eca"], "sites": [1, 2]},
    ...          "ECA in the first block only.")
    >>> "cnn_eca_first_block" in list_models()
    True
    >>> _ = VARIANTS.pop("cnn_eca_first_block")  # (the example cleans up after itself)
    """
    if name in VARIANTS:
        raise ValueError(f"A variant named {name!r} is already registered.")
    _model_class(config).check_config({**config, "name": name})
    VARIANTS[name] = {"description": description, "config": copy.deepcopy(config)}


def _check_name(name):
    if not isinstance(name, str) or name not in VARIANTS:
        raise ValueError(
            f"Unknown model {name!r}.{did_you_mean(name, VARIANTS, cutoff=0.5)} Available: "
            f"{', '.join(VARIANTS)} "
            "(keras_attn.list_models())."
        )
    return name


def list_models(pattern="*"):
    """The registered variants matching a glob ``pattern``, with a one-line description each.

    Args:
        pattern: str, default ``"*"``; e.g. ``"*_ae*"``.

    Returns:
        dict, name -> description, in registry order.

    Example:
    >>> list(list_models("cnn_conv*"))
    ['cnn_conv_ae', 'cnn_conv_ae_eca', 'cnn_conv_ae_const', 'cnn_conv_ae_he']
    """
    return {n: v["description"] for n, v in VARIANTS.items() if fnmatch.fnmatch(n, pattern)}


def list_backbones():
    """The registered variants without attention: the networks a gate goes into (a search's,
    a leaderboard's).

    Example:
    >>> list_backbones()
    ['cnn', 'cnn3', 'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110']
    """
    return [name for name in list_models() if not get_config(name)["attention"]]


def get_config(name_or_config="cnn", **overrides):
    """The complete, checked config of a variant, with ``overrides`` applied.

    Args:
        name_or_config: str (a registered name) or dict (a config, complete or
            partial).
        **overrides: config keys to change; nested option dicts are merged,
            e.g. ``conv_ae={"filters": [16, 32]}``.

    Returns:
        A JSON-able dict that `build` accepts unchanged.

    Example:
    >>> get_config("cnn_conv_ae", sites=[1, 2])["sites"]
    [1, 2]
    """
    cls, config = _merged(name_or_config, overrides)
    return cls.check_config(config)


def build(name_or_config="cnn", input_shape=None, num_classes=None, weights=None, **overrides):
    """Build an (uncompiled) model by variant name or from a config.

    The model takes raw pixel values (0-255) and outputs class probabilities.

    Args:
        name_or_config: str or dict. A name from `list_models` or a config
            (as returned by `get_config` or saved by the tuner).
        input_shape: ``(height, width, channels)``, default the config's
            (``(32, 32, 3)`` for registry names).
        num_classes: int, default the config's (10 for registry names).
        weights: None (new weights) or a published model of the same config to
            load the weights of: a folder, an https address or ``hf://owner/name``
            (`keras_attn.pretrained.load_weights`).
        **overrides: config keys to change (see
            `keras_attn.backbone.DEFAULT_CONFIG` for the CNN: ``sites``,
            ``attention``, ``attention_position``, ``blocks``, ``head``,
            ``conv_ae={...}``...; `keras_attn.resnet.model.DEFAULT_CONFIG` for a
            ResNet: ``depth``, ``widths``, ``attention`` (a gate name or a
            list), ``sites`` (residual blocks), a gate's options under its name).

    Returns:
        A `keras_attn.AttentionCNN` or `keras_attn.resnet.AttentionResNet` (a
        functional ``keras.Model``).

    Example:
    >>> model = build("cnn_conv_ae_eca")
    >>> model.count_params() > 2_900_000
    True
    >>> small = build("cnn_eca", input_shape=(28, 28, 1), sites=[1, 3])
    >>> small.output_shape
    (None, 10)
    >>> keras_attn_resnet = build("resnet20", attention="cbam", sites=[7, 8, 9])
    >>> [site for site, _ in keras_attn_resnet.attention_layers]
    [7, 8, 9]
    """
    if input_shape is not None:
        overrides["input_shape"] = list(input_shape)
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    cls, config = _merged(name_or_config, overrides)
    model = cls(config)
    if weights is not None:
        from keras_attn.pretrained.loading import load_weights

        load_weights(model, weights)
    return model
