"""What the search needs to know about a backbone: its names, its sites, their sizes.

A backbone is a registered model without attention (``cnn``, ``cnn3``, and the
CIFAR ResNets where they are registered). Its sites are where a gate may sit:
the conv layers of the study's CNN, the residual blocks of a ResNet. The
search groups sites into named placements (`default_placements`) and limits
the conv-AE gate's depth by each site's size (`site_sizes`).
"""

from __future__ import annotations

from keras_attn import backbone as cnn
from keras_attn import resnet
from keras_attn._checks import did_you_mean
from keras_attn.layers import list_gates
from keras_attn.zoo import get_config, list_backbones  # noqa: F401 - get_config: the examples

__all__ = [
    "check_backbone",
    "default_placements",
    "gate_names",
    "has_position",
    "list_backbones",
    "site_sizes",
    "sites_text",
]


def gate_names():
    """The registered gate names (`keras_attn.layers.list_gates`): what a gate search may choose.

    Example:
    >>> gate_names()[:3]
    ['eca', 'cbam', 'cbam_channel']
    """
    return list(list_gates())


def check_backbone(name):
    """``name`` if it is a backbone (`list_backbones`), else a clear ``ValueError``.

    Example:
    >>> check_backbone("cnn")
    'cnn'
    >>> check_backbone("resnet21")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: Unknown backbone 'resnet21'...Valid backbones: cnn, cnn3...
    """
    valid = list_backbones()
    if name not in valid:
        raise ValueError(
            f"Unknown backbone {name!r}.{did_you_mean(name, valid)} Valid backbones: "
            f"{', '.join(valid)} (models without attention, keras_attn.list_models())."
        )
    return name


def _is_resnet(config):
    return config.get("backbone") == "resnet"


def site_sizes(config):
    """Feature-map ``(height, width, channels)`` at each site of ``config``, in site order.

    Example:
    >>> site_sizes(get_config("cnn"))
    [(32, 32, 64), (30, 30, 64), (15, 15, 128), (13, 13, 128)]
    >>> site_sizes(get_config("resnet20"))[2:4]  # the outputs of residual blocks 3 and 4
    [(32, 32, 16), (16, 16, 32)]
    """
    return resnet.block_sizes(config) if _is_resnet(config) else cnn.site_sizes(config)


def default_placements(config):
    """One placement per block of sites plus ``"all"``: the search's default ``sites``.

    The study's CNN: ``"block<b>"`` holds conv block ``b``'s two conv layers.
    A ResNet: ``"stage<s>"`` holds stage ``s``'s residual blocks.

    Example:
    >>> default_placements(get_config("cnn"))
    {'block1': [1, 2], 'block2': [3, 4], 'all': [1, 2, 3, 4]}
    >>> default_placements(get_config("resnet20"))["stage2"]
    [4, 5, 6]
    """
    if _is_resnet(config):
        n = resnet.stage_blocks(config)
        stages = len(config["widths"])
        placements = {
            f"stage{s}": list(range(s * n - n + 1, s * n + 1)) for s in range(1, stages + 1)
        }
        placements["all"] = list(range(1, stages * n + 1))
        return placements
    n_blocks = len(config["blocks"])
    placements = {f"block{b}": [2 * b - 1, 2 * b] for b in range(1, n_blocks + 1)}
    placements["all"] = list(range(1, 2 * n_blocks + 1))
    return placements


def sites_text(config):
    """What the sites of ``config`` are, for error messages.

    Example:
    >>> sites_text(get_config("cnn"))
    'this network has 2 conv blocks'
    >>> sites_text(get_config("resnet20"))
    'the sites of resnet20 are its 9 residual blocks'
    """
    if _is_resnet(config):
        n = len(site_sizes(config))
        return f"the sites of {config['name']} are its {n} residual blocks"
    return f"this network has {len(config['blocks'])} conv blocks"


def has_position(config):
    """Whether the backbone lets a config choose the gate's ``attention_position``.

    Example:
    >>> has_position(get_config("cnn")), has_position(get_config("resnet20"))
    (True, False)
    """
    return "attention_position" in config
