"""A run's recipe made real: its optimizer, learning-rate schedule, weight decay and loss.

`make_optimizer` turns a `keras_attn.protocol.ProtocolSettings` into the Keras optimizer
both trainers step with: SGD (with momentum and Nesterov), Adam, AdamW or RMSprop, its
learning rate on a schedule (`SCHEDULES`: Keras' own, and `OneCycle`), and weight decay
applied once, coupled (an L2 term in each gradient, before momentum) or decoupled (Keras'
``weight_decay``, which shrinks the weights). `make_loss` is the cross-entropy, with
label smoothing when asked. The recipes themselves are
`keras_attn.protocol.settings.RECIPES`.
"""

from __future__ import annotations

import keras

__all__ = ["OneCycle", "learning_rate_at", "make_loss", "make_optimizer"]

_EPSILON = 1e-7  # Keras' clipping of probabilities in its cross-entropy


@keras.saving.register_keras_serializable(package="keras_attn")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """A one-cycle learning rate: linear from 0 to ``peak`` over ``warmup_steps``, then
    linear to 0 at ``total_steps``.

    Example:
        >>> schedule = OneCycle(0.4, total_steps=100, warmup_steps=20)
        >>> [round(float(schedule(s)), 3) for s in (0, 10, 20, 60, 100)]
        [0.0, 0.2, 0.4, 0.2, 0.0]
    """

    def __init__(self, peak, total_steps, warmup_steps):
        self.peak, self.total_steps, self.warmup_steps = (
            float(peak),
            int(total_steps),
            int(warmup_steps),
        )

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        up = step / max(self.warmup_steps, 1)
        down = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        rate = keras.ops.where(step < self.warmup_steps, up, down)
        return self.peak * keras.ops.clip(rate, 0.0, 1.0)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }


def _schedule(settings, steps_per_epoch):
    """The learning rate of ``settings``: a float, or a schedule over the run's steps."""
    lr, kind = settings.learning_rate, settings.schedule
    if kind == "constant":
        return lr
    if not steps_per_epoch:
        raise ValueError(f"The {kind!r} schedule needs the steps per epoch; got {steps_per_epoch}.")
    total = int(settings.epochs * steps_per_epoch)
    warmup = int(round(settings.warmup * total))
    schedules = keras.optimizers.schedules
    if kind == "step":
        bounds = sorted({int(round(f * total)) for f in settings.step_at})
        values = [lr * settings.step_factor**k for k in range(len(bounds) + 1)]
        return schedules.PiecewiseConstantDecay(bounds, values)
    if kind == "cosine":
        return schedules.CosineDecay(lr, decay_steps=total)
    if kind == "warmup_cosine":
        return schedules.CosineDecay(
            0.0, decay_steps=max(total - warmup, 1), warmup_target=lr, warmup_steps=warmup
        )
    return OneCycle(lr, total_steps=total, warmup_steps=warmup)


def learning_rate_at(settings, step, steps_per_epoch):
    """The learning rate ``settings`` give at optimizer step ``step`` (0-based).

    Example:
        >>> from keras_attn.protocol import ProtocolSettings
        >>> s = ProtocolSettings(schedule="step", epochs=4, step_at=[0.5])
        >>> [round(learning_rate_at(s, k, 10), 4) for k in (0, 20, 21, 39)]
        [0.1, 0.1, 0.01, 0.01]
    """
    rate = _schedule(settings, steps_per_epoch)
    value = rate(step) if callable(rate) else rate
    return float(keras.ops.convert_to_numpy(value))


_COUPLED = {}  # optimizer class -> its coupled-weight-decay subclass


def _coupled(cls):
    """``cls`` adding ``l2 * w`` to each gradient before its update (coupled weight decay)."""
    if cls not in _COUPLED:

        class Coupled(cls):
            def __init__(self, *args, l2=0.0, **kwargs):
                super().__init__(*args, **kwargs)
                self.l2 = float(l2)

            def apply(self, grads, trainable_variables=None):
                variables = trainable_variables
                if variables is None:
                    variables = self._trainable_variables
                grads = [
                    g if g is None else g + self.l2 * keras.ops.cast(v, g.dtype)
                    for g, v in zip(grads, variables)
                ]
                return super().apply(grads, trainable_variables)

        Coupled.__name__ = Coupled.__qualname__ = f"Coupled{cls.__name__}"
        _COUPLED[cls] = Coupled
    return _COUPLED[cls]


def make_optimizer(settings, steps_per_epoch=None):
    """The Keras optimizer ``settings`` name, with its schedule and weight decay.

    Args:
        settings: a `keras_attn.protocol.ProtocolSettings`.
        steps_per_epoch: optimizer steps in an epoch (a schedule's length is
            ``epochs x steps_per_epoch``); needed unless the schedule is constant.

    Example:
        >>> from keras_attn.protocol import ProtocolSettings
        >>> opt = make_optimizer(ProtocolSettings(momentum=0.9, weight_decay=1e-4), 352)
        >>> type(opt).__name__, opt.momentum, opt.l2, opt.weight_decay
        ('CoupledSGD', 0.9, 0.0001, None)
    """
    classes = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "rmsprop": keras.optimizers.RMSprop,
    }
    cls, kwargs = classes[settings.optimizer], {}
    if settings.optimizer == "sgd":
        kwargs = {"momentum": settings.momentum, "nesterov": settings.nesterov}
    decay = settings.weight_decay
    coupled = decay and settings.weight_decay_mode == "coupled"
    if coupled and settings.optimizer == "adamw":
        raise ValueError(
            "optimizer 'adamw' decays the weights decoupled; use weight_decay_mode='decoupled', "
            "or optimizer 'adam' for coupled L2."
        )
    # Keras' weight_decay (decoupled) or the L2 term (coupled), never both: AdamW's own
    # default decay is turned off unless asked for.
    kwargs["weight_decay"] = decay if decay and not coupled else None
    if settings.optimizer == "adamw":
        kwargs["weight_decay"] = decay
    rate = _schedule(settings, steps_per_epoch)
    if coupled:
        return _coupled(cls)(learning_rate=rate, l2=decay, **kwargs)
    return cls(learning_rate=rate, **kwargs)


def make_loss(settings):
    """The loss of ``settings``: sparse categorical cross-entropy on probabilities, with
    label smoothing ``settings.label_smoothing`` (the target is ``1 - e`` on the label and
    ``e / classes`` spread over every class).

    Example:
        >>> from keras_attn.protocol import ProtocolSettings
        >>> loss = make_loss(ProtocolSettings(label_smoothing=0.2))
        >>> round(float(loss([0], [[0.5, 0.5]])[0]), 4)  # -log 0.5, whatever the smoothing
        0.6931
    """
    eps = settings.label_smoothing
    if not eps:
        return keras.losses.sparse_categorical_crossentropy

    def smoothed_crossentropy(y_true, y_pred):
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred)
        log_p = ops.log(ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        classes = ops.shape(y_pred)[-1]
        picked = ops.sum(log_p * ops.one_hot(labels, classes, dtype=log_p.dtype), axis=-1)
        return -(1.0 - eps) * picked - eps * ops.mean(log_p, axis=-1)

    return smoothed_crossentropy
