"""The JAX trainer's compiled functions: a group's training step, epoch, inference and masks.

A `Program` holds one model architecture's compiled functions for a group size, and is
shared by every group of that model in the process (`program_for`), so a model compiles
once, not once per group. Its functions take the group's stacked states
(trainable, non-trainable and optimizer variables, one leading axis for the runs) and
follow Keras' stateless API (``model.stateless_call``, ``optimizer.stateless_apply``).

Two choices decide how fast a device runs them (`keras_attn.protocol.settings`'
``GRAD_FORMS`` and ``EPOCH_FORMS``; the settings check them):

- ``grad_form="per_run"`` takes each run's gradient inside ``jax.vmap``: the kernel
  gradients become grouped forward convolutions. ``"summed"`` takes the gradient of
  the sum of the runs' losses outside the vmap (the same numbers, the runs' weights
  being disjoint): they become batch-grouped convolutions, which XLA:GPU hands to
  cuDNN's backward-filter kernels and XLA:CPU expands slowly.
- ``epoch_form="scan"`` runs an epoch (and an inference pass) as one compiled
  ``lax.scan``; ``"steps"`` calls one compiled step per batch from Python, which
  XLA:CPU runs far faster than convolutions inside a loop.

`default_forms` picks per platform (measured: docs/performance.md). Each function is
compiled ahead of time once per argument shape; `Program.compile_seconds` and
`conv_kinds` say what that cost and which convolutions it called.
"""

from __future__ import annotations

import json
import re
import time

import keras
import numpy as np

from keras_attn.attention_maps.sites import attention_layers, measured_mask

__all__ = ["conv_kinds", "default_forms"]

_PROGRAMS = {}  # key -> Program, for the life of the process


def default_forms(platform=None):
    """The fast forms for a JAX platform: ``{"grad_form": ..., "epoch_form": ...}``.

    On a CPU each run's gradient in a compiled step per batch; elsewhere (a GPU) the
    summed gradient in a compiled scan per epoch.

    Example:
        >>> default_forms("cpu"), default_forms("gpu")["grad_form"]
        ({'grad_form': 'per_run', 'epoch_form': 'steps'}, 'summed')
    """
    if platform is None:
        import jax

        platform = jax.default_backend()
    if platform == "cpu":
        return {"grad_form": "per_run", "epoch_form": "steps"}
    return {"grad_form": "summed", "epoch_form": "scan"}


_CONV = re.compile(r"= .*?\b(convolution|custom-call)\((.*)$")


def conv_kinds(hlo_text):
    """Count the convolutions of a compiled module's text, by kind.

    cuDNN calls count by target (``__cudnn$convForward``, ``...BackwardInput``,
    ``...BackwardFilter``); plain XLA convolutions by their grouping
    (``convolution``, ``convolution feature_group_count=16``, ``convolution
    batch_group_count=16``).

    Example:
        >>> conv_kinds('''
        ...   %a = f32[2] convolution(f32[1] %x, f32[1] %k), feature_group_count=16, dim_labels=b
        ...   %b = (f32[2], u8[0]) custom-call(%x, %k), custom_call_target="__cudnn$convForward"
        ... ''')
        {'__cudnn$convForward': 1, 'convolution feature_group_count=16': 1}
    """
    counts = {}
    for line in hlo_text.splitlines():
        match = _CONV.search(line)
        if not match:
            continue
        op, rest = match.groups()
        if op == "custom-call":
            target = re.search(r'custom_call_target="([^"]+)"', rest)
            if not target or "conv" not in target.group(1).lower():
                continue
            kind = target.group(1)
        else:
            groups = re.findall(r"(feature_group_count|batch_group_count)=(\d+)", rest)
            kind = " ".join(["convolution"] + [f"{k}={v}" for k, v in groups if v != "1"])
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def _shape_key(args):
    import jax

    leaves, tree = jax.tree.flatten(args)
    return tree, tuple((tuple(a.shape), str(a.dtype)) for a in leaves)


def program_for(model, optimizer, *, key, runs, grad_form, epoch_form, **kwargs):
    """The `Program` of ``key`` (a JSON-able description of model, optimizer and settings),
    made from ``model``, ``optimizer`` and ``kwargs`` (``loss``, ``augmentation``) the
    first time this process asks for it."""
    full = json.dumps([key, runs, grad_form, epoch_form], sort_keys=True, default=str)
    if full not in _PROGRAMS:
        _PROGRAMS[full] = Program(model, optimizer, grad_form, epoch_form, **kwargs)
    return _PROGRAMS[full]


class Program:
    """One model's compiled group functions (see the module docstring). A training step
    donates the group's state to the next (its buffers are reused, on every device): keep
    no other reference to a state passed in."""

    def __init__(self, model, optimizer, grad_form, epoch_form, loss=None, augmentation=None):
        import jax

        self.model, self.optimizer = model, optimizer
        self.grad_form, self.epoch_form = grad_form, epoch_form
        self.loss_fn = loss or keras.losses.sparse_categorical_crossentropy
        self.augmentation = augmentation  # (kind, padding, pad_mode), or None
        self.layers = attention_layers(model)
        self._probe = None
        if self.layers:
            self._probe = keras.Model(model.inputs[0], [layer.input for _, _, layer in self.layers])
        step = self._summed_step if grad_form == "summed" else self._per_run_step
        self._fns = {
            "step": jax.jit(step, donate_argnums=(0,)),
            "step_scan": jax.jit(self._scan(step), donate_argnums=(0,)),
            "predict": jax.jit(self._predict_batch),
            "predict_scan": jax.jit(self._scan(self._predict_batch)),
            "masks": jax.jit(self._mask_batch),
            "masks_scan": jax.jit(self._scan(self._mask_batch)),
            "keep": jax.jit(_keep),
        }
        self._compiled = {}
        self.compile_seconds = {}
        self.compiled_text = {}

    # ------------------------------------------------------------------ running

    def run(self, name, *args):
        """Call function ``name``, compiled ahead of time for these argument shapes."""
        key = (name, _shape_key(args))
        compiled = self._compiled.get(key)
        if compiled is None:
            t0 = time.perf_counter()
            compiled = self._fns[name].lower(*args).compile()
            seconds = time.perf_counter() - t0
            self.compile_seconds[name] = self.compile_seconds.get(name, 0.0) + seconds
            self._compiled[key] = compiled
            self.compiled_text.setdefault(name, compiled)
        return compiled(*args)

    def over_batches(self, name, carry, batches, *consts, after_each=None):
        """``name``'s body over ``batches`` (leading axis): one scan, or one call per batch
        (then ``after_each(i)`` after call ``i``, if given).

        Returns ``(carry, outputs stacked over the batches)``.
        """
        import jax
        import jax.numpy as jnp

        if self.epoch_form == "scan":
            return self.run(f"{name}_scan", carry, batches, *consts)
        outs = []
        for i in range(len(batches)):
            carry, out = self.run(name, carry, batches[i], *consts)
            outs.append(out)
            if after_each is not None:
                after_each(i)
        return carry, jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    def text(self, name):
        """The compiled module of function ``name`` as text (after it first ran)."""
        return self.compiled_text[name].as_text()

    # ------------------------------------------------------------------ compiled bodies

    @staticmethod
    def _scan(body):
        def scanned(carry, xs, *consts):
            import jax

            return jax.lax.scan(lambda c, x: body(c, x, *consts), carry, xs)

        return scanned

    def _loss(self, trainable, non_trainable, x, y):
        import jax.numpy as jnp

        probs, non_trainable, losses = self.model.stateless_call(
            trainable, non_trainable, x, training=True, return_losses=True
        )
        loss = jnp.mean(self.loss_fn(y, probs))
        if losses:
            loss = loss + sum(losses)
        return loss, (probs, non_trainable)

    def _images(self, x_all, idx, aug):
        """The images ``idx`` of one run as float32, augmented by its ``aug`` (or not)."""
        x = x_all[idx]
        if aug is not None:
            _, padding, pad_mode = self.augmentation
            x = augment_on_device(x, *(a[idx] for a in aug), padding=padding, pad_mode=pad_mode)
        return x.astype("float32")

    def _per_run_step(self, state, idx, x_all, y_all, aug=None):
        """Every run's step on its images ``idx`` (runs, batch): each gradient in the vmap."""
        import jax
        import jax.numpy as jnp

        def one(state, idx, aug):
            trainable, non_trainable, opt = state
            x, y = self._images(x_all, idx, aug), y_all[idx]
            (loss, (probs, non_trainable)), grads = jax.value_and_grad(self._loss, has_aux=True)(
                trainable, non_trainable, x, y
            )
            trainable, opt = self.optimizer.stateless_apply(opt, grads, trainable)
            correct = jnp.sum(jnp.argmax(probs, axis=-1) == y)
            return (trainable, non_trainable, opt), (loss * idx.shape[0], correct)

        return jax.vmap(one)(state, idx, aug)

    def _summed_step(self, state, idx, x_all, y_all, aug=None):
        """Every run's step on its images ``idx``: the gradient of the summed losses."""
        import jax
        import jax.numpy as jnp

        trainable, non_trainable, opt = state

        def one(t, nt, idx, aug):
            return self._loss(t, nt, self._images(x_all, idx, aug), y_all[idx])

        def total(trainable):
            losses, (probs, nts) = jax.vmap(one)(trainable, non_trainable, idx, aug)
            return losses.sum(), (losses, probs, nts)

        (_, (losses, probs, non_trainable)), grads = jax.value_and_grad(total, has_aux=True)(
            trainable
        )
        trainable, opt = jax.vmap(self.optimizer.stateless_apply)(opt, grads, trainable)
        correct = jnp.sum(jnp.argmax(probs, axis=-1) == y_all[idx], axis=-1)
        return (trainable, non_trainable, opt), (losses * idx.shape[1], correct)

    def _predict_batch(self, carry, xb, trainable, non_trainable):
        """Every run's probabilities on one batch: ``(runs, batch, classes)``."""
        import jax

        def one(trainable, non_trainable):
            probs, _ = self.model.stateless_call(
                trainable, non_trainable, xb.astype("float32"), training=False
            )
            return probs

        return carry, jax.vmap(one)(trainable, non_trainable)

    def _mask_batch(self, carry, xb, trainable, non_trainable):
        """Every run's per-image mask figures on one batch: ``(runs, layers, batch, 6)``."""
        import jax

        return carry, jax.vmap(lambda t, nt: self._one_run_masks(t, nt, xb))(
            trainable, non_trainable
        )

    def _one_run_masks(self, trainable, non_trainable, xb):
        import jax.numpy as jnp

        model = self.model
        mapping = list(zip(model.trainable_variables, trainable))
        mapping += list(zip(model.non_trainable_variables, non_trainable))
        out = []
        with keras.StatelessScope(state_mapping=mapping):
            inputs = self._probe(xb.astype("float32"), training=False)
            inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            for (_, _, layer), x in zip(self.layers, inputs):
                gate = measured_mask(layer, x)
                full = jnp.broadcast_to(gate.astype("float32"), x.shape)
                mean = jnp.mean(full, axis=(1, 2, 3))
                m2 = jnp.sum(jnp.square(full - mean[:, None, None, None]), axis=(1, 2, 3))
                out.append(
                    jnp.stack(
                        [
                            mean,
                            m2,
                            jnp.min(gate, axis=tuple(range(1, gate.ndim))).astype("float32"),
                            jnp.max(gate, axis=tuple(range(1, gate.ndim))).astype("float32"),
                            jnp.std(jnp.mean(full, axis=-1), axis=(1, 2)),
                            jnp.std(jnp.mean(full, axis=(1, 2)), axis=-1),
                        ],
                        axis=-1,
                    )
                )
        return jnp.stack(out)  # (layers, batch, 6)

    # ------------------------------------------------------------------ mask statistics

    def mask_statistics(self, weights, images, batch_size=250):
        """Each run's `keras_attn.attention_maps.mask_statistics` rows, on the device.

        ``weights``: the stacked (trainable, non-trainable) values; ``images``: uint8
        ``(N, h, w, c)``. The per-image figures come from one compiled pass for the
        group; they are combined over the images in float64 on the host. ``None``
        per run for a model without attention blocks.
        """
        if not self.layers:
            return None
        n = len(images)
        batches = padded_batches(images, batch_size)
        _, figures = self.over_batches("masks", (), batches, *weights)
        figures = np.asarray(figures, np.float64)  # (steps, runs, layers, batch, 6)
        figures = figures.transpose(1, 2, 0, 3, 4).reshape(*figures.shape[1:3], -1, 6)[:, :, :n]
        return [self._rows(run_figures, n) for run_figures in figures]

    def _rows(self, figures, n):
        rows = []
        for (site, kind, layer), f, x in zip(self.layers, figures, self._probe.outputs):
            size = float(np.prod(x.shape[1:]))
            mean = float(f[:, 0].mean())
            m2 = float(f[:, 1].sum() + size * np.square(f[:, 0] - mean).sum())
            rows.append(
                {
                    "site": site,
                    "kind": kind,
                    "name": layer.name,
                    "images": int(n),
                    "mean": mean,
                    "std": float(np.sqrt(max(m2 / (size * n), 0.0))),
                    "min": float(f[:, 2].min()),
                    "max": float(f[:, 3].max()),
                    "spatial_std": float(f[:, 4].sum() / n),
                    "channel_std": float(f[:, 5].sum() / n),
                }
            )
        return rows


def augment_on_device(x, dy, dx, flip, *, padding, pad_mode):
    """`keras_attn.data.augment.augment` in JAX, for a compiled step: the same images."""
    import jax.numpy as jnp

    b, h, w, _ = x.shape
    mode = "reflect" if pad_mode == "reflect" else "constant"
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode=mode)
    rows = dy[:, None] + jnp.arange(h)[None]
    cols = dx[:, None] + jnp.arange(w)[None]
    cols = jnp.where(flip[:, None], cols[:, ::-1], cols)
    return padded[jnp.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _keep(mask, new, old):
    """``new`` where ``mask`` (one bool per run) is set, else ``old``, leaf by leaf."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old
    )


def padded_batches(x, batch_size):
    """``x`` as ``(steps, batch_size, ...)`` with zero images at the end, on the device."""
    import jax.numpy as jnp

    steps = -(-len(x) // batch_size)
    padded = np.zeros((steps * batch_size, *x.shape[1:]), dtype=x.dtype)
    padded[: len(x)] = x
    return jnp.asarray(padded.reshape(steps, batch_size, *x.shape[1:]))
