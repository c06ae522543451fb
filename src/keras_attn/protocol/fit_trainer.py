"""The protocol's ``model.fit`` trainer (every backend), and the choice of a group's trainer.

`SingleRun` trains one run's own model with ``model.fit``; `make_trainer` picks it, or the
JAX trainer (`keras_attn.protocol.jax_trainer`) for a group of runs on the JAX backend.
Both offer the interface `keras_attn.protocol.loop` drives: ``members``, ``training``,
``steps``, ``set_epoch``, ``fit_epoch``, ``validate``, ``keep_best``, ``checkpoint``,
``load``, ``test``, ``mask_statistics`` and ``finished``.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.data import ArrayBatches
from keras_attn.protocol import records
from keras_attn.protocol.recipe import make_loss, make_optimizer
from keras_attn.protocol.training import compile_for_training, loss_and_accuracy

# SingleRun is driven by keras_attn.protocol.loop; make_trainer chooses a group's trainer.
__all__ = ["make_trainer"]


class SingleRun:
    """One run: its own model, trained by ``model.fit`` on `ArrayBatches` shuffled with its seed."""

    name = "fit"

    def __init__(self, job, runs, seeds):
        keras.utils.set_random_seed(seeds[0])
        s, d = job.settings, job.data
        self.model = job.spec.build(job.build_kwargs, s.mixed_precision)
        self.batches = ArrayBatches(
            d.x_train, d.y_train, s.batch_size, shuffle=True, seed=seeds[0],
            augmentation=s.augmentation_spec,
        )  # fmt: skip
        compile_for_training(
            self.model,
            optimizer=make_optimizer(s, len(self.batches)),
            loss=make_loss(s),
            jit_compile=job.training["jit_compile"],
        )
        self.members = [self.model]
        self.callbacks = [keras.callbacks.TerminateOnNaN()]
        # What Keras runs: it turns XLA off where the model or TF op determinism forbids it.
        self.training = {"jit_compile": bool(self.model.jit_compile), "trainer": self.name}
        self.model.optimizer.build(self.model.trainable_variables)
        self.steps = len(self.batches)
        self._best = None

    def set_epoch(self, epoch):
        self.batches.set_epoch(epoch)

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

    def keep_best(self, i):
        self._best = records.values(self.model.variables)

    def checkpoint(self):
        model = self.model
        return (
            records.values(model.variables),
            records.values(model.optimizer.variables),
            [self._best],
        )

    def load(self, arrays):
        records.assign(self.model.variables, arrays["model"], "model")
        records.assign(self.model.optimizer.variables, arrays["optimizer"], "optimizer")
        self._best = arrays.get("best0") or None

    def test(self, x, y, batch_size):
        return [None]  # finish_run predicts with the model

    def mask_statistics(self, images):
        return [None]  # finish_run computes them with the model

    def finished(self, i):
        return self.model, self._best


def make_trainer(job, runs, seeds):
    """The trainer of one group: the JAX trainer when ``job.training["trainer"]`` is
    ``"jax"``, else `SingleRun` (a group of one).
    """
    if job.training.get("trainer") == "jax":
        from keras_attn.protocol.jax_trainer import JaxTrainer

        return JaxTrainer(job, runs, seeds)
    if len(runs) != 1:
        raise ValueError(f"The model.fit trainer trains one run at a time, got runs {runs}.")
    return SingleRun(job, runs, seeds)
