"""The protocol's ``model.fit`` trainers (every backend), and the choice of a group's trainer.

`SingleRun` trains one run's own model; `PackedRuns` packs several runs in one model
(`keras_attn.parallel`). `make_trainer` picks one of them, or the JAX trainer
(`keras_attn.protocol.jax_trainer`), for a group. Every trainer offers the interface
`keras_attn.protocol.loop` drives: ``members``, ``training``, ``steps``,
``set_epoch``, ``fit_epoch``, ``validate``, ``keep_best``, ``checkpoint``, ``load``,
``test`` and ``finished``.

Example:
    >>> [cls.name for cls in (SingleRun, PackedRuns)]
    ['fit', 'fit']
"""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.data import ArrayBatches
from keras_attn.protocol import records
from keras_attn.protocol.settings import make_optimizer
from keras_attn.training import compile_for_training, loss_and_accuracy

# The trainer classes are driven by keras_attn.protocol.loop; these two choose one.
__all__ = ["make_trainer", "trainer_class"]


class _FitTrainer:
    """What both ``model.fit`` trainers share: ``self.model`` holds every run's variables."""

    name = "fit"

    def _ready(self, n):
        # What Keras runs: it turns XLA off where the model or TF op determinism forbids it.
        self.training = {"jit_compile": bool(self.model.jit_compile), "trainer": self.name}
        self.model.optimizer.build(self.model.trainable_variables)
        self.steps = len(self.batches)
        self._bests = [None] * n

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

    def keep_best(self, i):
        self._bests[i] = records.values(self.members[i].variables)

    def checkpoint(self):
        model = self.model
        return (
            records.values(model.variables),
            records.values(model.optimizer.variables),
            list(self._bests),
        )

    def load(self, arrays):
        records.assign(self.model.variables, arrays["model"], "model")
        records.assign(self.model.optimizer.variables, arrays["optimizer"], "optimizer")
        self._bests = [arrays.get(f"best{i}") or None for i in range(len(self.members))]

    def test(self, x, y, batch_size):
        return [None] * len(self.members)  # finish_run predicts with each model

    def finished(self, i):
        return self.members[i], self._bests[i]


class SingleRun(_FitTrainer):
    """One run: its own model, trained on `ArrayBatches` shuffled with its seed."""

    def __init__(self, job, runs, seeds):
        keras.utils.set_random_seed(seeds[0])
        self.model = job.spec.build(job.build_kwargs, job.settings.mixed_precision)
        compile_for_training(
            self.model,
            optimizer=make_optimizer(job.settings),
            jit_compile=job.training["jit_compile"],
        )
        self.members = [self.model]
        s, d = job.settings, job.data
        self.batches = ArrayBatches(d.x_train, d.y_train, s.batch_size, shuffle=True, seed=seeds[0])
        # Keras stops an epoch whose loss turns NaN; packed runs go on (see PackedRuns).
        self.callbacks = [keras.callbacks.TerminateOnNaN()]
        self._ready(1)

    def fit_epoch(self, callbacks):
        # shuffle=False: Keras would otherwise reorder the batches with Python's global RNG,
        # whose state a resumed process cannot reproduce. ArrayBatches shuffles instead.
        hist = self.model.fit(
            self.batches, epochs=1, shuffle=False, verbose=0, callbacks=self.callbacks + callbacks
        ).history
        return [(float(hist["loss"][-1]), float(hist.get("accuracy", [np.nan])[-1]))]

    def validate(self, x, y, batch_size):
        probs = self.model.predict(ArrayBatches(x, None, batch_size), verbose=0)
        return [loss_and_accuracy(probs, y)]


class PackedRuns(_FitTrainer):
    """Several runs packed in one model (`keras_attn.parallel`), each on its own batches.

    A run that diverges keeps stepping (its NaNs cannot reach the others' disjoint
    weights) but is no longer recorded.
    """

    def __init__(self, job, runs, seeds):
        from keras_attn.parallel import PackedBatches, build_copies, compile_packed, pack_models
        from keras_attn.training import dtype_policy

        with dtype_policy(job.settings.mixed_precision):
            self.members = build_copies(job.spec.source, seeds, **job.build_kwargs)
        self.model = pack_models(self.members)
        compile_packed(
            self.model, make_optimizer(job.settings), jit_compile=job.training["jit_compile"]
        )
        s, d = job.settings, job.data
        self.batches = PackedBatches(d.x_train, d.y_train, s.batch_size, seeds)
        self.callbacks = []
        self._ready(len(seeds))

    def fit_epoch(self, callbacks):
        hist = self.model.fit(
            self.batches, epochs=1, shuffle=False, verbose=0, callbacks=callbacks
        ).history
        return [
            (float(hist[f"copy{i}_loss"][-1]), float(hist.get(f"copy{i}_accuracy", [np.nan])[-1]))
            for i in range(len(self.members))
        ]

    def validate(self, x, y, batch_size):
        from keras_attn.parallel import evaluate_copies

        return [(e["loss"], e["accuracy"]) for e in evaluate_copies(self.model, x, y, batch_size)]


def trainer_class(training, runs):
    """The trainer class of a group of ``runs`` runs: ``training["trainer"]`` decides.

    Example:
        >>> [trainer_class({"trainer": "fit"}, n).__name__ for n in (1, 4)]
        ['SingleRun', 'PackedRuns']
    """
    if training.get("trainer") == "jax":
        from keras_attn.protocol.jax_trainer import ScanTrainer

        return ScanTrainer
    return SingleRun if runs == 1 else PackedRuns


def make_trainer(job, runs, seeds):
    """The trainer of one group, built: `trainer_class`'s, given the job, runs and seeds.

    Example:
        >>> make_trainer.__name__  # train_group calls it; see trainer_class
        'make_trainer'
    """
    return trainer_class(job.training, len(runs))(job, runs, seeds)
