"""Hypertunable attention gates: a KerasTuner HyperModel whose samples are model configs.

By default it searches the conv-autoencoder gate; with ``space={"gates": [...]}`` it also
chooses the gate type.
"""

from __future__ import annotations

import keras
import keras_tuner

from keras_attn._checks import check_int
from keras_attn.data import ArrayBatches
from keras_attn.protocol.recipe import make_loss, make_optimizer
from keras_attn.protocol.settings import ProtocolSettings
from keras_attn.protocol.training import (
    check_jit_compile,
    check_mixed_precision,
    compile_for_training,
    dtype_policy,
)
from keras_attn.tuning.hparams import count_points, declare, widths
from keras_attn.tuning.presets import OBJECTIVE
from keras_attn.tuning.space import resolve_space
from keras_attn.zoo import build as build_model
from keras_attn.zoo import get_config

__all__ = ["ConvAutoencoderHyperModel"]


class ConvAutoencoderHyperModel(keras_tuner.HyperModel):
    """A KerasTuner HyperModel over an attention gate's config, its sites and the learning rate.

    By default the gate is the conv-autoencoder one and the search is over its
    depth, widths, final kernel, placement, position and a preceding ECA. A
    space with ``"gates"`` (e.g. ``["eca", "cbam", "conv_ae"]`` or ``"all"``)
    also chooses the gate type; the conv-AE's hyperparameters are then active
    only when it is chosen. The constructor takes the fixed facts (the base
    network, input shape, classes, the space's bounds); every searched choice
    is a named ``hp.*`` with the study's value as default, declared in `build`
    (`keras_attn.tuning.hparams.declare`). docs/tuning.md describes the space.

    Args:
        base: str or dict, default ``"cnn"``. The network the gates go into: a
            backbone name (`keras_attn.zoo.list_backbones`: the
            study's CNN, a CIFAR ResNet where registered) or a config. Its
            attention settings are replaced.
        input_shape: ``(height, width, channels)``, default the base's
            (32, 32, 3 for ``"cnn"``).
        num_classes: int, default the base's (10 for ``"cnn"``).
        space: dict, default ``None`` (`DEFAULT_SPACE`). Keys to change in
            `DEFAULT_SPACE`, e.g. ``{"first_filters": [8, 16], "eca": [True]}``.
            A one-value list fixes that choice.
        seed: int >= 1, default 1. Every trial's weights start from this seed
            (common random numbers: trials differ only by their config).
        name: str, default ``"conv_ae_search"`` (``"gate_search"`` when the
            space chooses the gate); the HyperModel's name.
        jit_compile: bool or ``None`` (default): jit-compile the training
            steps (XLA); ``None`` takes `keras_attn.protocol.training.fast_path`'s choice
            for this backend and device when a model is built.
        mixed_precision: ``None`` (default, float32), ``"mixed_bfloat16"`` or
            ``"mixed_float16"``: the dtype policy models are built under
            (`keras_attn.protocol.training.dtype_policy`).
        recipe: dict, default ``None`` (the study's training): the recipe settings
            (`keras_attn.protocol.ProtocolSettings` fields such as ``schedule``,
            ``weight_decay``, ``augmentation``; e.g.
            ``keras_attn.protocol.settings.recipe_settings("fast")``) every trial
            trains with, through the protocol's optimizer, loss and batches. The
            learning rate, epochs and batch size are the search's.

    Raises:
        ValueError: an unknown space key, an empty or invalid dimension, a
            placement whose sites cannot hold ``min_depth`` stages, a space
            with a single point (nothing to search), or a bad ``jit_compile``
            or ``mixed_precision``.

    Example:
    >>> import keras_tuner
    >>> hm = ConvAutoencoderHyperModel()
    >>> hm.depths
    {'block1': [1, 2, 3, 4], 'block2': [1, 2, 3], 'all': [1, 2, 3]}
    >>> hm.model_config(keras_tuner.HyperParameters())["conv_ae"]["filters"]
    [12, 24, 48]
    >>> hm.model_config({"sites": "block1", "depth_block1": 4, "growth_block1": 1.5})["sites"]
    [1, 2]
    >>> gates = ConvAutoencoderHyperModel(space={"gates": ["eca", "cbam", "conv_ae"]})
    >>> gates.model_config({"gate": "cbam", "sites": "block2"})["sites"]
    [3, 4]
    """

    def __init__(
        self,
        base="cnn",
        *,
        input_shape=None,
        num_classes=None,
        space=None,
        seed=1,
        name=None,
        jit_compile=None,
        mixed_precision=None,
        recipe=None,
    ):
        gate_search = isinstance(space, dict) and space.get("gates") is not None
        self.recipe = _check_recipe(recipe)
        name = name or ("gate_search" if gate_search else "conv_ae_search")
        super().__init__(name=name, tunable=True)
        self.jit_compile = check_jit_compile(jit_compile)
        self.mixed_precision = check_mixed_precision(mixed_precision)
        overrides = {}
        if input_shape is not None:
            overrides["input_shape"] = [int(d) for d in input_shape]
        if num_classes is not None:
            overrides["num_classes"] = num_classes
        self.base_config = get_config(base, **overrides)
        try:
            self.seed = check_int("seed", seed, 1)
        except ValueError:
            raise ValueError(
                f"`seed` must be an integer >= 1, got {seed!r} (KerasTuner treats 0 as "
                "'pick a random seed')."
            ) from None
        self.space, self.depths = resolve_space(space, self.base_config)
        configs, rates = count_points(self.space, self.depths)
        if configs * rates == 1:
            raise ValueError(
                "The search space holds a single point (every dimension has one value and "
                "each placement one depth): there is nothing to search. Widen a dimension, or "
                "train that config directly with keras-attn protocol."
            )

    def _as_hp(self, hp):
        if isinstance(hp, keras_tuner.HyperParameters):
            return hp
        if isinstance(hp, dict):
            values = hp
            hp = keras_tuner.HyperParameters()
            hp.values = dict(values)
            return hp
        raise ValueError(
            f"Expected keras_tuner.HyperParameters or a dict of values, got {type(hp).__name__}."
        )

    def hyperparameters(self):
        """A `keras_tuner.HyperParameters` holding every hyperparameter of the space.

        All conditional branches are declared (values are the defaults), so
        ``.space`` lists the whole search space, e.g. to enumerate or sample it.

        Example:
        >>> [p.name for p in ConvAutoencoderHyperModel().hyperparameters().space][:3]
        ['sites', 'depth_block1', 'growth_block1']
        """
        hp = keras_tuner.HyperParameters()
        declare(hp, self.space, self.depths)
        probes = [{"gate": gate} for gate in self.space["gates"] or []]
        for placement, depths in self.depths.items():
            for depth in depths:
                if self.space["gates"] is None:
                    probes.append({"sites": placement, f"depth_{placement}": depth})
                else:
                    probes.append(
                        {"gate": "conv_ae", "sites_conv_ae": placement, f"depth_{placement}": depth}
                    )
        for values in probes:
            probe = keras_tuner.HyperParameters()
            probe.values = values
            declare(probe, self.space, self.depths)
            hp.merge(probe.space, overwrite=False)
        return hp

    def values(self, hp):
        """The searched choices of ``hp`` as a plain dict (depth and growth resolved).

        Args:
            hp: `keras_tuner.HyperParameters` or a dict of hyperparameter values
                (missing ones take their defaults).

        Returns:
            dict with ``gate``, ``sites`` (placement name), ``depth``,
            ``growth`` (``None`` at depth 1), ``first_filters``,
            ``final_kernel``, ``activation`` (``None`` for a gate other than
            the conv-AE), ``attention_position``, ``eca`` and
            ``learning_rate`` (`keras_attn.tuning.hparams.declare`).

        Example:
        >>> ConvAutoencoderHyperModel().values({"eca": True})["eca"]
        True
        """
        return declare(self._as_hp(hp), self.space, self.depths)

    def model_config(self, hp, name=None):
        """The complete model config of ``hp``: what `keras_attn.build` takes unchanged.

        Args:
            hp: `keras_tuner.HyperParameters` or a dict of hyperparameter values.
            name: str, default the HyperModel's name; the config's ``name``.

        Returns:
            A validated, JSON-able config dict (`keras_attn.get_config` output).

        Example:
        >>> cfg = ConvAutoencoderHyperModel().model_config({"eca": True})
        >>> cfg["attention"], cfg["conv_ae"]["filters"]
        (['eca', 'conv_ae'], [12, 24, 48])
        """
        v = self.values(hp)
        overrides = {
            "name": name or self.name,
            "attention": (["eca"] if v["eca"] else []) + [v["gate"]],
            "sites": self.space["sites"][v["sites"]],
        }
        if v["attention_position"] is not None:
            overrides["attention_position"] = v["attention_position"]
        if v["gate"] == "conv_ae":
            overrides["conv_ae"] = {
                "filters": widths(v["first_filters"], v["growth"] or 1.0, v["depth"]),
                "final_kernel": v["final_kernel"],
                "activation": v["activation"],
            }
        return get_config(self.base_config, **overrides)

    def learning_rate(self, hp):
        """The SGD learning rate of ``hp``.

        Example:
        >>> ConvAutoencoderHyperModel().learning_rate({})
        0.1
        """
        return float(self.values(hp)["learning_rate"])

    def size(self):
        """``(model configs, learning rates)`` the space holds (conditionals counted exactly).

        Example:
        >>> ConvAutoencoderHyperModel().size()
        (2160, 4)
        """
        return count_points(self.space, self.depths)

    def describe(self):
        """A one-paragraph, human-readable summary of the space.

        Example:
        >>> print(ConvAutoencoderHyperModel().describe())  # doctest: +ELLIPSIS
        search space: 2,160 model configs x 4 learning rates ...
        """
        configs, rates = self.size()
        s, base = self.space, self.base_config

        def depth(p):
            d = self.depths.get(p)
            return f"; depth {d[0]}-{d[-1]}" if d else ""

        placements = ", ".join(
            f"{p} (sites {','.join(map(str, sites))}{depth(p)})" for p, sites in s["sites"].items()
        )
        network = f"blocks {base['blocks']}, " if "blocks" in base else ""
        gates = f"gates {s['gates']}; " if s["gates"] is not None else ""
        ae = (
            f"first filters {s['first_filters']}, growth {s['growth']}, final kernel "
            f"{s['final_kernel']}, activation {s['activation']}, "
            if self.depths
            else ""
        )
        position = (
            f"position {s['attention_position']}, " if s["attention_position"] is not None else ""
        )
        return (
            f"search space: {configs:,} model configs x {rates} learning rates on "
            f"{base['name']} ({network}input {tuple(base['input_shape'])}); {gates}"
            f"placements: {placements}; {ae}{position}ECA {s['eca']}, learning rate "
            f"{s['learning_rate']}"
        )

    def build(self, hp):
        """Build and compile the model of ``hp`` (SGD, sparse categorical cross-entropy).

        Deterministic: the same ``hp`` always gives the same architecture, and
        the weights start from ``seed`` (KerasTuner rebuilds models to reload
        checkpoints). The model is built under ``mixed_precision``'s dtype
        policy and compiled with `keras_attn.protocol.training.compile_for_training`
        (``jit_compile``: the fast path unless set).

        Args:
            hp: `keras_tuner.HyperParameters` (or a dict of values).

        Returns:
            A compiled model (a `keras_attn.AttentionCNN` on the study's CNN).

        Example:
        >>> import keras_tuner
        >>> model = ConvAutoencoderHyperModel().build(keras_tuner.HyperParameters())
        >>> round(float(model.optimizer.learning_rate), 6)
        0.1
        """
        hp = self._as_hp(hp)
        config = self.model_config(hp)
        keras.utils.set_random_seed(self.seed)
        with dtype_policy(self.mixed_precision):
            model = build_model(config)
        return compile_for_training(
            model,
            learning_rate=self.learning_rate(hp),
            jit_compile=self.jit_compile,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def fit(
        self,
        hp,
        model,
        x,
        y,
        validation_data=None,
        batch_size=128,
        epochs=1,
        initial_epoch=0,
        callbacks=None,
        verbose=0,
        **kwargs,
    ):
        """Train as the protocol's ``model.fit`` trainer does: its optimizer and loss
        (`keras_attn.protocol.recipe`) and its batches (`keras_attn.data.ArrayBatches`).

        Batches are float32 0..255 (the model rescales), shuffled with an order
        that depends on ``seed`` and the epoch only.

        Args:
            hp: the trial's hyperparameters (unused: everything is in ``model``).
            model: the compiled model from `build`.
            x, y: training images ``(n, h, w, c)`` uint8 and integer labels.
            validation_data: ``(x_val, y_val)``; required (the objective is
                validation accuracy).
            batch_size: int, default 128.
            epochs, initial_epoch: as for ``keras.Model.fit`` (Hyperband sets both).
            callbacks: list of callbacks (KerasTuner adds its own).
            verbose: as for ``keras.Model.fit``.
            **kwargs: passed to ``keras.Model.fit``.

        Returns:
            The ``keras.callbacks.History``.

        Example:
        >>> import numpy as np
        >>> hm = ConvAutoencoderHyperModel({"blocks": [4], "dense_units": 8},
        ...                                input_shape=(8, 8, 3), num_classes=2)
        >>> x = np.zeros((4, 8, 8, 3), "uint8"); y = np.array([0, 1, 0, 1])
        >>> model = hm.build({})
        >>> history = hm.fit({}, model, x, y, validation_data=(x, y), batch_size=2)
        >>> sorted(history.history)
        ['accuracy', 'loss', 'val_accuracy', 'val_loss']
        """
        if validation_data is None:
            raise ValueError(
                f"The search maximises {OBJECTIVE!r}: pass validation_data=(x_val, y_val)."
            )
        # The protocol's optimizer, schedule, loss and batches (its augmentation too), with
        # the trial's learning rate and the search's epochs and batch size.
        lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        training = ProtocolSettings(
            **{**self.recipe, "learning_rate": lr, "epochs": epochs, "batch_size": batch_size}
        )
        train = ArrayBatches(
            x, y, batch_size, shuffle=True, seed=self.seed, augmentation=training.augmentation_spec
        )
        val = ArrayBatches(validation_data[0], validation_data[1], batch_size)
        model.compile(
            optimizer=make_optimizer(training, len(train)),
            loss=make_loss(training),
            metrics=["accuracy"],
            jit_compile=model.jit_compile,
        )
        return model.fit(
            train,
            validation_data=val,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=[_SetEpoch(train), *(callbacks or [])],
            verbose=verbose,
            **kwargs,
        )


def _check_recipe(recipe):
    """``recipe`` as a dict of `ProtocolSettings` fields, checked (``{}`` for None)."""
    import dataclasses

    recipe = dict(recipe or {})
    names = {f.name for f in dataclasses.fields(ProtocolSettings)}
    unknown = sorted(set(recipe) - names)
    if unknown:
        raise ValueError(
            f"Unknown recipe settings {unknown}; a recipe holds ProtocolSettings fields "
            "(keras_attn.protocol.settings.RECIPES shows some)."
        )
    ProtocolSettings(**recipe)  # checks the values
    return recipe


class _SetEpoch(keras.callbacks.Callback):
    """Selects each epoch's shuffling order of an `ArrayBatches` before the epoch runs."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
