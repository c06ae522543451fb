"""Which models a protocol trains: registry names, configs or config files, resolved once."""

from __future__ import annotations

import dataclasses
import json
import os

from keras_attn import zoo
from keras_attn.protocol.training import dtype_policy

__all__ = ["ModelSpec", "resolve_models"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model of the protocol: the name its records carry and what `keras_attn.build` takes.

    Args:
        name: the name in records, folders and reports.
        source: a registry name, or a config dict (e.g. a tuner's ``best_config.json``).

    Example:
        >>> spec = resolve_models(["cnn_eca"])[0]
        >>> spec.name, spec.config({"input_shape": [32, 32, 3]})["attention"]
        ('cnn_eca', ['eca'])
    """

    name: str
    source: object

    def config(self, build_kwargs):
        """The complete config this model is built from, with ``build_kwargs`` applied."""
        return zoo.get_config(self.source, **build_kwargs)

    def build(self, build_kwargs, mixed_precision=None):
        """A new model, built under the ``mixed_precision`` dtype policy (``None``: float32)."""
        with dtype_policy(mixed_precision):
            return zoo.build(self.source, **build_kwargs)


def _from_file(path):
    """A `ModelSpec` from a JSON config file; its name is the config's ``name`` or the stem."""
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read model config file {path!r}: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"Model config file {path!r} must hold a JSON object (a config).")
    name = str(config.get("name") or os.path.splitext(os.path.basename(path))[0])
    return _from_config({**config, "name": name}, f"config file {path!r}")


def _from_config(config, where):
    name = str(config.get("name") or "")
    if not name:
        raise ValueError(f'The model config of {where} needs a "name" (records are kept by name).')
    config = zoo.get_config(config)  # validated: a bad config fails here, not mid-run
    if name in zoo.VARIANTS and zoo.get_config(name) != config:
        raise ValueError(
            f"The model config of {where} is named {name!r}, which is a registered variant "
            'with a different config; give the config another "name".'
        )
    return ModelSpec(name, config)


def resolve_models(models):
    """The models to train as `ModelSpec`s, checked.

    Nothing is registered globally: a config file or dict is trained under its
    own name, as `keras_attn.build` accepts a config.

    Args:
        models: ``None`` (the study's variants), a comma-separated string or a
            list whose entries are registry names, config dicts (with a
            ``"name"``), paths of ``.json`` config files, or `ModelSpec`s.

    Example:
        >>> [s.name for s in resolve_models("cnn,cnn_eca")]
        ['cnn', 'cnn_eca']
        >>> resolve_models([{"name": "eca_block1", "attention": ["eca"], "sites": [1, 2]}])[0].name
        'eca_block1'
    """
    known = list(zoo.list_models())
    if models is None:
        return [ModelSpec(m, m) for m in zoo.STUDY_VARIANTS]
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if not models:
        raise ValueError(f"No models given; choose from {known} or give a config .json file.")
    specs, unknown = [], []
    for m in models:
        if isinstance(m, ModelSpec):
            specs.append(m)
        elif isinstance(m, dict):
            specs.append(_from_config(m, "the config given"))
        elif str(m).endswith(".json"):
            specs.append(_from_file(str(m)))
        elif m in known:
            specs.append(ModelSpec(m, m))
        else:
            unknown.append(m)
    if unknown:
        raise ValueError(
            f"Unknown model(s) {unknown}; registered models are {known}, or give the path "
            "of a config .json file (e.g. a tuner's best_config.json)."
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"Model list has duplicates: {names}.")
    return specs
