"""The protocol's JAX trainer: a group's runs vectorised, each model compiled once.

The pattern of the Keras guide "Writing a training loop from scratch in JAX": the
Keras models stay the models, and their states (trainable, non-trainable and
optimizer variables) are handed to Keras' stateless calls. Here the states of a
group's runs are stacked and trained together by a `keras_attn.protocol.jax_program.
Program` (compiled once per model and group size in a process):

- the data set goes to the device once per group, as uint8;
- each run's batches are those `keras_attn.data.ArrayBatches` gives its seed
  (`keras_attn.data.batches.epoch_order`, computed on the host and sent as an
  index array of shape (steps, runs, batch)); the last, smaller batch is its own
  step, so BatchNorm sees exactly its images;
- validation, test and mask passes run over zero-padded batches (inference is per
  image, so the padding changes nothing; it is cut off);
- the best epoch's values stay on the device until the checkpoint or the end.

Checkpoints hold each run's variables in ``model.variables`` order, then the
optimizer's shared variables once and each run's slots, so a group resumes on any
JAX machine. Before a run is finished its states are assigned back to its Keras
model, so records, export and the report are those of the ``model.fit`` path.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from keras_attn.data.augment import epoch_augmentation
from keras_attn.data.batches import epoch_order
from keras_attn.protocol.jax_program import default_forms, padded_batches, program_for
from keras_attn.protocol.recipe import make_loss, make_optimizer
from keras_attn.protocol.training import loss_and_accuracy

# JaxTrainer is driven by keras_attn.protocol.loop (fit_trainer.make_trainer picks it).
__all__ = ["is_out_of_memory"]


def is_out_of_memory(error):
    """Whether ``error`` is XLA's out-of-device-memory error (``RESOURCE_EXHAUSTED``).

    Example:
        >>> is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory")), is_out_of_memory(
        ...     ValueError("bad"))
        (True, False)
    """
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory while trying to allocate" in text


def _stack(values_per_run):
    import jax.numpy as jnp

    return [jnp.stack(vs) for vs in zip(*values_per_run)]


def _copies(arrays):
    import jax.numpy as jnp

    return [jnp.array(a, copy=True) for a in arrays]


def resolve_forms(settings):
    """``{"grad_form", "epoch_form"}``: the settings' choices, else this platform's defaults."""
    forms = default_forms()
    for key in forms:
        if getattr(settings, key, None):
            forms[key] = getattr(settings, key)
    return forms


class JaxTrainer:
    """A group of runs of one model trained by compiled, vectorised JAX steps.

    The interface `keras_attn.protocol.loop` drives (shared with the ``model.fit``
    trainer of `keras_attn.protocol.fit_trainer`): ``set_epoch``, ``fit_epoch``,
    ``validate``, ``keep_best``, ``checkpoint``, ``load``, ``test``,
    ``mask_statistics`` and ``finished``.

    Args:
        job: the group's `keras_attn.protocol.loop.Job`.
        runs: the run numbers.
        seeds: their seeds; run ``i``'s model is built as a single run builds it.
    """

    name = "jax"

    def __init__(self, job, runs, seeds):
        import jax.numpy as jnp

        settings, data = job.settings, job.data
        self.members = []
        for seed in seeds:  # exactly the calls of a single run
            keras.utils.set_random_seed(seed)
            self.members.append(job.spec.build(job.build_kwargs, settings.mixed_precision))
        forms = resolve_forms(settings)
        self.training = {"jit_compile": True, "trainer": self.name, **forms}
        self.seeds, self.batch_size = list(seeds), int(settings.batch_size)
        self.n_train = len(data.x_train)
        self.steps = -(-self.n_train // self.batch_size)
        model = self.members[0]
        optimizer = make_optimizer(settings, self.steps)
        optimizer.build(model.trainable_variables)
        shared = make_optimizer(settings, self.steps)
        shared.build([])
        self.n_shared = len(shared.variables)  # iterations, learning rate: before the slots
        key = {
            "config": job.spec.config(job.build_kwargs),
            "policy": settings.mixed_precision,
            "precision": settings.precision,
            "optimizer": {k: v for k, v in optimizer.get_config().items() if k != "name"},
            "label_smoothing": settings.label_smoothing,
            "augmentation": settings.augmentation_spec,
        }
        self.augmentation = settings.augmentation_spec
        self.program = program_for(
            model, optimizer, key=key, runs=len(seeds), **forms,
            loss=make_loss(settings), augmentation=self.augmentation,
        )  # fmt: skip
        # Where each of model.variables sits in (trainable, non-trainable).
        where = {id(v): ("t", j) for j, v in enumerate(model.trainable_variables)}
        where.update({id(v): ("n", j) for j, v in enumerate(model.non_trainable_variables)})
        self.layout = [where[id(v)] for v in model.variables]
        self.state = (
            _stack([[v.value for v in m.trainable_variables] for m in self.members]),
            _stack([[v.value for v in m.non_trainable_variables] for m in self.members]),
            _stack([[jnp.asarray(v.value) for v in optimizer.variables]] * len(seeds)),
        )
        # A copy: each step donates the state's buffers to the next.
        self.best = (_copies(self.state[0]), _copies(self.state[1]))
        self.has_best, self._marked = [False] * len(seeds), set()
        self.x = jnp.asarray(data.x_train)  # uint8, once per group
        self.y = jnp.asarray(np.asarray(data.y_train, dtype=np.int32))
        self.epoch, self._host, self._padded = 0, None, {}

    # ------------------------------------------------------------------ the loop's interface

    def set_epoch(self, epoch):
        """Select every run's batch order for epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def _indices(self):
        order = np.stack([epoch_order(self.n_train, s, self.epoch) for s in self.seeds])
        full = (self.n_train // self.batch_size) * self.batch_size
        idx_full = idx_rest = None
        if full:
            idx_full = order[:, :full].reshape(len(self.seeds), -1, self.batch_size)
            idx_full = idx_full.swapaxes(0, 1).astype(np.int32)
        if full < self.n_train:
            idx_rest = order[:, full:].astype(np.int32)
        return idx_full, idx_rest

    def _epoch_augmentation(self):
        """Every run's flips and crops of this epoch, ``(dy, dx, flip)`` of shape (runs, n)."""
        import jax.numpy as jnp

        if self.augmentation is None:
            return None
        kind, padding, _ = self.augmentation
        per_run = [
            epoch_augmentation(self.n_train, s, self.epoch, kind, padding) for s in self.seeds
        ]
        return tuple(jnp.asarray(np.stack(parts)) for parts in zip(*per_run))

    def fit_epoch(self, callbacks=None):
        """Train one epoch of every run; ``[(loss, accuracy)]`` per run (as ``model.fit``)."""
        import jax
        import jax.numpy as jnp

        self._flush_bests()
        self._host = None
        callbacks = list(callbacks or [])
        for cb in callbacks:
            cb.on_epoch_begin(self.epoch)

        def after_each(i):
            for cb in callbacks:
                cb.on_train_batch_end(i, None)

        idx_full, idx_rest = self._indices()
        aug = self._epoch_augmentation()
        state, parts = self.state, []
        if idx_full is not None:
            state, (losses, hits) = self.program.over_batches(
                "step", state, jnp.asarray(idx_full), self.x, self.y, aug, after_each=after_each
            )
            parts.append((losses.sum(0), hits.sum(0)))
        if idx_rest is not None:
            idx = jnp.asarray(idx_rest)
            state, out = self.program.run("step", state, idx, self.x, self.y, aug)
            parts.append(out)
        self.state = state
        parts = jax.device_get(parts)
        loss = sum(np.asarray(p[0], np.float64) for p in parts)
        correct = sum(np.asarray(p[1], np.float64) for p in parts)
        return [(float(lo / self.n_train), float(c / self.n_train)) for lo, c in zip(loss, correct)]

    def _batches(self, x, batch_size):
        key = (id(x), len(x), batch_size)
        if key not in self._padded:
            self._padded[key] = padded_batches(x, batch_size)
        return self._padded[key]

    def _probabilities(self, trainable, non_trainable, x, batch_size):
        batches = self._batches(x, batch_size)
        _, probs = self.program.over_batches("predict", (), batches, trainable, non_trainable)
        probs = np.asarray(probs).swapaxes(0, 1)  # (runs, steps, batch, k)
        return probs.reshape(len(self.seeds), -1, probs.shape[-1])[:, : len(x)]

    def validate(self, x, y, batch_size):
        """Every run's ``(loss, accuracy)`` on ``x, y`` (inference mode)."""
        probs = self._probabilities(self.state[0], self.state[1], x, batch_size)
        return [loss_and_accuracy(p, y) for p in probs]

    def keep_best(self, i):
        """Run ``i``'s current values become its best (copied on the device)."""
        self._marked.add(i)

    def _flush_bests(self):
        if not self._marked:
            return
        mask = np.array([i in self._marked for i in range(len(self.seeds))])
        self.best = self.program.run("keep", mask, (self.state[0], self.state[1]), self.best)
        for i in self._marked:
            self.has_best[i] = True
        self._marked = set()

    def _model_values(self, trainable, non_trainable, i):
        parts = {"t": trainable, "n": non_trainable}
        return [np.asarray(parts[kind][j][i]) for kind, j in self.layout]

    def checkpoint(self):
        """``(model values, optimizer values, bests)``: each run's, in ``model.variables`` order."""
        import jax

        self._flush_bests()
        trainable, non_trainable, opt = jax.device_get(self.state)
        best_t, best_n = jax.device_get(self.best)
        n = len(self.seeds)
        model_values = []
        for i in range(n):
            model_values += self._model_values(trainable, non_trainable, i)
        opt_values = [np.asarray(a[0]) for a in opt[: self.n_shared]]
        opt_values += [np.asarray(a[i]) for i in range(n) for a in opt[self.n_shared :]]
        bests = [
            self._model_values(best_t, best_n, i) if self.has_best[i] else None for i in range(n)
        ]
        return model_values, opt_values, bests

    def _from_values(self, values, what):
        """(trainable, non-trainable) stacks from ``values``: each run's model.variables."""
        import jax.numpy as jnp

        n, per = len(self.seeds), len(self.layout)
        if len(values) != n * per:
            raise ValueError(
                f"Checkpoint holds {len(values)} {what} variables but {n} run(s) of this "
                f"model have {n * per}: it belongs to another model or Keras version."
            )
        t = [[None] * n for _ in self.state[0]]
        nt = [[None] * n for _ in self.state[1]]
        for i in range(n):
            for (kind, j), a in zip(self.layout, values[i * per : (i + 1) * per]):
                expected = tuple(self.state[0 if kind == "t" else 1][j].shape[1:])
                if tuple(a.shape) != expected:
                    raise ValueError(
                        f"Checkpoint {what} variable has shape {a.shape}, the model expects "
                        f"{expected}."
                    )
                (t if kind == "t" else nt)[j][i] = a
        return [jnp.asarray(np.stack(v)) for v in t], [jnp.asarray(np.stack(v)) for v in nt]

    def load(self, arrays):
        """Resume from `keras_attn.protocol.records.load_checkpoint`'s arrays."""
        import jax.numpy as jnp

        n = len(self.seeds)
        trainable, non_trainable = self._from_values(arrays["model"], "model")
        opt = arrays["optimizer"]
        slots = len(self.state[2]) - self.n_shared
        if len(opt) != self.n_shared + n * slots:
            raise ValueError(
                f"Checkpoint holds {len(opt)} optimizer variables but {n} run(s) need "
                f"{self.n_shared + n * slots}: it belongs to another optimizer."
            )
        stacked = [jnp.asarray(np.stack([a] * n)) for a in opt[: self.n_shared]]
        for j in range(slots):
            per_run = [opt[self.n_shared + i * slots + j] for i in range(n)]
            stacked.append(jnp.asarray(np.stack(per_run)))
        self.state, self._host = (trainable, non_trainable, stacked), None
        self.best = (_copies(trainable), _copies(non_trainable))
        bests = [arrays.get(f"best{i}") or None for i in range(n)]
        self.has_best = [b is not None for b in bests]
        if any(self.has_best):
            filled = [b if b is not None else v for b, v in zip(bests, self._split(arrays))]
            self.best = self._from_values([a for b in filled for a in b], "best")

    def _split(self, arrays):
        per = len(self.layout)
        return [arrays["model"][i * per : (i + 1) * per] for i in range(len(self.seeds))]

    def test(self, x, y, batch_size):
        """Each run's best values on the test set, one pass for the group.

        Returns ``[(probabilities or None, seconds)]`` per run; the seconds are each
        run's share of the pass.
        """
        self._flush_bests()
        t0 = time.perf_counter()
        probs = self._probabilities(self.best[0], self.best[1], x, batch_size)
        seconds = (time.perf_counter() - t0) / len(self.seeds)
        return [(p if has else None, seconds) for p, has in zip(probs, self.has_best)]

    def mask_statistics(self, images):
        """Each run's mask statistics on ``images`` with its best values, one pass for the
        group (`keras_attn.attention_maps.mask_statistics`'s rows; ``None`` where a run
        has no best values or the model no attention blocks)."""
        self._flush_bests()
        rows = self.program.mask_statistics(self.best, images)
        if rows is None:
            return [None] * len(self.seeds)
        return [r if has else None for r, has in zip(rows, self.has_best)]

    def finished(self, i):
        """Run ``i``'s Keras model holding its last values, and its best values (or None)."""
        import jax

        if self._host is None:
            self._host = jax.device_get((self.state[0], self.state[1])), jax.device_get(self.best)
        (trainable, non_trainable), best_values = self._host
        model = self.members[i]
        for v, a in zip(model.variables, self._model_values(trainable, non_trainable, i)):
            v.assign(a)
        best = self._model_values(*best_values, i) if self.has_best[i] else None
        return model, best
