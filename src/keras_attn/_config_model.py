"""The config-built models: one config format, checked once, when a model reads it.

A config is a JSON-able dict: the keys of a backbone (its class's ``DEFAULT_CONFIG``),
the gates in ``attention`` and the ``sites`` that get them, and under each gate's name
its options, completed from the defaults of the gate's constructor. `ConfigModel`
checks it (`ConfigModel.check_config`) when it builds the model, and ``get_config``
returns it, so a ``.keras`` file reloads as the same class with the same config.
"""

import copy
import inspect

import keras

from keras_attn._checks import (
    check_input_shape,
    check_positive,
    check_positive_int,
    check_rate,
    check_sites,
    did_you_mean,
)
from keras_attn.layers import max_depth
from keras_attn.layers import registry as gates

# What every Keras layer takes (name, dtype...): not a gate's options.
_LAYER_ARGS = set(inspect.signature(keras.layers.Layer.__init__).parameters)


def _check_name(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    return value


def _check_pixel_scale(name, value):
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if value is not None and not (number and value > 0):
        raise ValueError(f"`{name}` must be a positive number or None, got {value!r}.")
    return value


def gate_options(kind, options):
    """A gate's complete options: ``options`` over the defaults of its constructor.

    Names are checked against the constructor's signature (no layer is made);
    the values are the layer's to check when the model builds it.

    Example:
    >>> gate_options("eca", {"kernel_size": 3})
    {'kernel_size': 3, 'gamma': 2, 'b': 1}
    """
    params = inspect.signature(gates.GATES[gates.check_name(kind)].__init__).parameters
    defaults = {
        k: p.default
        for k, p in params.items()
        if k not in _LAYER_ARGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    if not isinstance(options, dict):
        raise ValueError(
            f"`{kind}` must be a dict of that gate's options ({', '.join(defaults)}), "
            f"got {options!r}."
        )
    for key in options:
        if key not in defaults:
            raise ValueError(
                f"Unknown `{kind}` option {key!r}.{did_you_mean(key, defaults)} "
                f"Valid: {', '.join(defaults)}."
            )
    full = {**defaults, **copy.deepcopy(options)}
    missing = [k for k, v in full.items() if v is inspect.Parameter.empty]
    if missing:
        raise ValueError(f"`{kind}` needs the option(s) {', '.join(missing)}: no default.")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in full.items()}


class ConfigModel(keras.Model):
    """A functional model built from a config: pixels, rescaling, a backbone, softmax.

    Subclasses set ``DEFAULT_CONFIG`` (every key but the gates' options, with its
    default), ``CHECKS`` (key -> ``check(name, value)`` returning the value),
    ``KIND`` and ``SITE_NOUN`` (for messages), and define ``site_sizes(config)``
    and ``body(x, config)`` (the layers from the rescaled pixels to the logits).
    ``model.model_config`` is the complete config; ``get_config`` returns what the
    constructor takes. Not registered: never instantiated itself.
    """

    DEFAULT_CONFIG = {}
    CHECKS = {
        "name": _check_name,
        "input_shape": lambda name, value: check_input_shape(value),
        "num_classes": check_positive_int,
        "bn_momentum": check_rate,
        "bn_epsilon": check_positive,
        "pixel_scale": _check_pixel_scale,
    }
    KIND = ""
    SITE_NOUN = "site"

    def __init__(self, config, **kwargs):
        config = self.check_config(config)
        inputs = keras.Input(tuple(config["input_shape"]), name="pixels")
        x = inputs
        if config["pixel_scale"] is not None:
            x = keras.layers.Rescaling(1.0 / config["pixel_scale"], name="rescale")(x)
        x = self.body(x, config)
        outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)
        kwargs.setdefault("name", config["name"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.model_config = config

    def get_config(self):
        return {
            "config": copy.deepcopy(self.model_config),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)

    @staticmethod
    def site_sizes(config):
        """Feature-map ``(height, width, channels)`` at each site, in site order."""
        raise NotImplementedError

    @classmethod
    def body(cls, x, config):
        """The layers from the rescaled pixels to the logits."""
        raise NotImplementedError

    @classmethod
    def attention_sites(cls, config):
        """The 1-based sites that get the gates under a checked ``config``.

        Example:
        >>> from keras_attn.backbone import AttentionCNN
        >>> AttentionCNN.attention_sites(AttentionCNN.check_config({"attention": ["eca"]}))
        [1, 2, 3, 4]
        """
        if not config["attention"]:
            return []
        n = len(cls.site_sizes(config))
        return list(range(1, n + 1)) if config["sites"] == "all" else list(config["sites"])

    @staticmethod
    def _attend(x, config, site):
        """``x`` through the gates of ``attention`` at ``site``, in order."""
        for kind in config["attention"]:
            options = dict(config[kind])
            if kind == "conv_ae" and isinstance(options["final_kernel"], list):
                options["final_kernel"] = options["final_kernel"][site - 1]
            x = gates.get(kind, name=f"site{site}_{kind}", **options)(x)
        return x

    @property
    def attention_layers(self):
        """``[(site, layer), ...]`` for every gate, in network order."""
        found = []
        for layer in self.layers:
            site, _, kind = layer.name.partition("_")
            if site[:4] == "site" and site[4:].isdigit() and kind in self.model_config["attention"]:
                found.append((int(site[4:]), layer))
        return found

    @classmethod
    def _unknown_key(cls, key):
        for other in ConfigModel.__subclasses__():
            if key in other.DEFAULT_CONFIG:
                backbone = other.DEFAULT_CONFIG.get("backbone", "cnn")
                return ValueError(
                    f"`{key}`: a key of {other.KIND} configs, not of {cls.KIND} configs. "
                    f"Start from one of its variants (keras_attn.list_models()) or give "
                    f'"backbone": "{backbone}".'
                )
        valid, names = list(cls.DEFAULT_CONFIG), gates.list_gates()
        return ValueError(
            f"Unknown config key {key!r}.{did_you_mean(key, [*valid, *names])} Valid: "
            f"{', '.join(valid)}, and a gate's name for its options ({', '.join(names)})."
        )

    @classmethod
    def check_config(cls, config):
        """Check a config and return a complete copy: defaults filled in, gate options completed.

        The one check of a config. Every problem raises ``ValueError`` naming the
        key, the value received and what is valid. Options of gates that are not
        in ``attention`` are checked and left out: they change nothing.

        Example:
        >>> from keras_attn.backbone import AttentionCNN
        >>> config = AttentionCNN.check_config({"attention": "eca", "sites": [3, 1]})
        >>> config["attention"], config["sites"], config["eca"]
        (['eca'], [1, 3], {'kernel_size': None, 'gamma': 2, 'b': 1})
        """
        if not isinstance(config, dict):
            raise ValueError(f"A model config must be a dict, got {type(config).__name__}.")
        config = copy.deepcopy(config)
        backbone = cls.DEFAULT_CONFIG.get("backbone", "cnn")
        if config.get("backbone", backbone) != backbone:
            raise ValueError(
                f"{cls.__name__} builds backbone {backbone!r}, got {config['backbone']!r}."
            )
        config.pop("backbone", None)
        names = gates.list_gates()
        for key in config:
            if key not in cls.DEFAULT_CONFIG and key not in names:
                raise cls._unknown_key(key)
        full = copy.deepcopy(cls.DEFAULT_CONFIG)
        full.update((k, v) for k, v in config.items() if k not in names)
        for key, check in cls.CHECKS.items():
            full[key] = check(key, full[key])
        sizes = cls.site_sizes(full)
        attention = full["attention"]
        attention = [attention] if isinstance(attention, str) else attention
        if not isinstance(attention, (list, tuple)):
            raise ValueError(f"`attention` must be a gate name or a list, got {attention!r}.")
        attention = [gates.check_name(kind) for kind in attention]
        if len(set(attention)) != len(attention):
            raise ValueError(f"`attention` lists a gate twice: {attention}.")
        full["attention"] = attention
        if full["sites"] != "all":
            scope = repr(full["name"])
            full["sites"] = check_sites(full["sites"], len(sizes), noun=cls.SITE_NOUN, scope=scope)
        for kind in names:
            if kind in config or kind in attention:
                options = gate_options(kind, config.get(kind, {}))
                if kind in attention:
                    full[kind] = options
        if "conv_ae" in attention:
            cls._check_conv_ae(full, sizes)
        return full

    @classmethod
    def _check_conv_ae(cls, config, sizes):
        """The conv-AE's per-site final kernels and its depth against each site's map."""
        noun, kernel = cls.SITE_NOUN, config["conv_ae"]["final_kernel"]
        if isinstance(kernel, list) and len(kernel) != len(sizes):
            raise ValueError(
                f"`conv_ae.final_kernel` is a list of {len(kernel)} but {config['name']!r} has "
                f"{len(sizes)} {noun}s: give one int for all {noun}s or one per {noun}."
            )
        filters = config["conv_ae"]["filters"]
        depth = len(filters) if isinstance(filters, list) else 0
        too_small = [
            (site, *sizes[site - 1][:2])
            for site in cls.attention_sites(config)
            if depth > max_depth(min(sizes[site - 1][:2]))
        ]
        if too_small:
            where = ", ".join(f"{noun} {s} ({h}x{w})" for s, h, w in too_small[:3])
            more = f" and {len(too_small) - 3} more" if len(too_small) > 3 else ""
            allowed = min(max_depth(min(h, w)) for _, h, w in too_small)
            raise ValueError(
                f"The conv autoencoder gate is too deep for {where}{more}: depth {depth} "
                f"(filters={filters}) needs a feature map of at least {2**depth}x{2**depth}. "
                f"Use at most {allowed} stages there (conv_ae={{'filters': [...]}}), a larger "
                f"input, or leave {'that' if len(too_small) == 1 else 'those'} {noun}"
                f"{'' if len(too_small) == 1 else 's'} out of `sites`."
            )
