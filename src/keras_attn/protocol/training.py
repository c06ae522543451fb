"""How keras_attn trains: the training path per backend and device, and the compile call.

The protocol (`keras_attn.protocol`), the tuner (`keras_attn.tuning`) and the
benchmark (`keras_attn.benchmark`) all compile through `compile_for_training`
with `fast_path`'s choices unless told otherwise, so the speed the benchmark
measures is the speed they train at:

- `resolve_training`: the trainer, jit, dtype policy and group size a run takes here.

- `fast_path`: jit compilation per backend and device, and how many runs the JAX
  trainer trains at once on one device; mixed precision is never on by default.
- `dtype_policy`: a context manager that builds models under a mixed-precision
  policy (``"mixed_bfloat16"`` or ``"mixed_float16"``), or leaves the current
  one (``None``).
- `compile_for_training`: ``model.compile`` with SGD, sparse categorical
  cross-entropy and accuracy, jit from `fast_path` unless given.

Every part has an off switch on the command lines: ``--no-jit``, ``--precision``
is opt-in, ``--group-size 1``.
"""

from __future__ import annotations

import contextlib

from keras_attn.runtime import accelerators
from keras_attn.runtime import backend as current_backend

__all__ = [
    "MIXED_PRECISION_POLICIES",
    "loss_and_accuracy",
    "check_jit_compile",
    "check_mixed_precision",
    "compile_for_training",
    "dtype_policy",
    "fast_path",
    "resolve_training",
]

#: The mixed-precision dtype policies keras_attn accepts (``None``: float32).
MIXED_PRECISION_POLICIES = ("mixed_bfloat16", "mixed_float16")


def fast_path(backend=None, accelerator=None):
    """The default training settings for keras_attn models on this backend and device.

    - TensorFlow on CPU: ``jit_compile=False`` (graph mode with oneDNN kernels,
      Keras' own CPU default).
    - TensorFlow on GPU: ``jit_compile=True`` (what Keras' ``"auto"`` picks on a
      GPU). TensorFlow op determinism, which the protocol enables by default,
      makes Keras turn XLA off.
    - JAX: ``jit_compile=True`` (without it every op is dispatched one by one).
    - PyTorch: ``jit_compile=False``.

    Mixed precision is never on by default (pass it explicitly). ``group_size``
    is how many runs of a model the JAX trainer trains at once: 1 on a CPU, 16 on
    a GPU. Why each choice, with the measurements behind it:
    docs/performance.md ("The fast path").

    Args:
        backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``; default Keras'
            current backend.
        accelerator: bool, whether a GPU is used; default: whether the backend
            sees one.

    Returns:
        dict ``{"jit_compile": bool, "mixed_precision": None, "group_size": int,
        "reason": str}``. Pass ``jit_compile`` to ``model.compile``.

    Example:
    >>> fast_path("tensorflow", accelerator=False)["jit_compile"]
    False
    >>> fast_path("jax", accelerator=False)["jit_compile"]
    True
    """
    backend = backend or current_backend()
    if backend not in ("tensorflow", "jax", "torch"):
        raise ValueError(f"Unknown backend {backend!r}: expected 'tensorflow', 'jax' or 'torch'.")
    if accelerator is None:
        accelerator = bool(accelerators()) if backend == current_backend() else False
    if backend == "tensorflow":
        jit = bool(accelerator)
        reason = (
            "TensorFlow GPU: XLA (Keras' own 'auto' choice on GPU; not measured here)"
            if accelerator
            else "TensorFlow CPU: XLA measured 1.3-1.6x slower than the oneDNN graph path"
        )
    elif backend == "jax":
        jit, reason = True, "JAX: jit-compiled steps (eager JAX dispatches op by op)"
    else:
        jit, reason = False, "PyTorch: eager (torch.compile not measured)"
    return {
        "jit_compile": jit,
        "mixed_precision": None,
        "group_size": 16 if accelerator else 1,
        "reason": reason,
    }


def compile_for_training(
    model,
    *,
    learning_rate=0.01,
    momentum=0.0,
    jit_compile=None,
    run_eagerly=False,
    optimizer=None,
    **kwargs,
):
    """Compile ``model`` for training as the protocol does, with the fast path by default.

    Args:
        model: a ``keras.Model`` taking raw pixels and returning probabilities.
        learning_rate: float, default 0.01 (SGD's, when ``optimizer`` is None).
        momentum: float, default 0.0 (SGD's).
        jit_compile: bool or None (default): None takes `fast_path`'s choice
            for this backend and device.
        run_eagerly: bool, default False. The plain, op-by-op path (for
            comparisons and debugging); overrides ``jit_compile``.
        optimizer: a ``keras.optimizers.Optimizer``; default SGD.
        **kwargs: passed to ``model.compile`` (``loss``, ``metrics``...).

    Returns:
        The model (compiled in place).

    """
    import keras

    if jit_compile is None:
        jit_compile = fast_path()["jit_compile"]
    if run_eagerly:
        jit_compile = False
    if optimizer is None:
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    kwargs.setdefault("loss", "sparse_categorical_crossentropy")
    kwargs.setdefault("metrics", ["accuracy"])
    model.compile(
        optimizer=optimizer, jit_compile=bool(jit_compile), run_eagerly=run_eagerly, **kwargs
    )
    return model


def check_jit_compile(jit_compile):
    """Validate a jit setting: ``True``, ``False`` or ``None`` (`fast_path`'s choice).

    Args:
        jit_compile: bool (NumPy bools too) or ``None``.

    Returns:
        ``None``, ``True`` or ``False``.

    Example:
    >>> check_jit_compile(None), check_jit_compile(False)
    (None, False)
    """
    import numpy as np

    if jit_compile is not None and not isinstance(jit_compile, (bool, np.bool_)):
        raise ValueError(
            f"`jit_compile` must be True, False or None (the fast path), got {jit_compile!r}."
        )
    return None if jit_compile is None else bool(jit_compile)


def check_mixed_precision(policy):
    """Validate a mixed-precision setting: ``None`` (float32) or one of `MIXED_PRECISION_POLICIES`.

    Args:
        policy: ``None``, ``"float32"`` (same as ``None``), ``"mixed_bfloat16"``
            or ``"mixed_float16"``.

    Returns:
        The policy name, or ``None`` for float32.

    Example:
    >>> check_mixed_precision("mixed_bfloat16"), check_mixed_precision("float32")
    ('mixed_bfloat16', None)
    """
    if policy in (None, "float32"):
        return None
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(
            f"`mixed_precision` must be None (float32) or one of {MIXED_PRECISION_POLICIES}, "
            f"got {policy!r}."
        )
    return policy


@contextlib.contextmanager
def dtype_policy(policy):
    """Build models under a mixed-precision policy; restore the previous policy after.

    Layers take the global dtype policy when they are created, so build the
    model inside the block and compile it anywhere. With ``None`` the current
    policy is left alone. keras_attn models keep their softmax in float32 under
    any policy. ``"mixed_float16"`` trains with Keras' dynamic loss scaling,
    which ``model.compile`` adds by itself.

    Args:
        policy: ``None``, ``"mixed_bfloat16"`` or ``"mixed_float16"``.

    Example:
    >>> import keras_attn
    >>> with dtype_policy("mixed_bfloat16"):
    ...     model = keras_attn.build("cnn_eca")
    >>> model.layers[2].compute_dtype, model.layers[2].variable_dtype
    ('bfloat16', 'float32')
    """
    import keras

    policy = check_mixed_precision(policy)
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def loss_and_accuracy(probabilities, labels):
    """Cross-entropy and accuracy of predicted class probabilities, computed in NumPy.

    Probabilities are clipped as Keras' sparse categorical cross-entropy clips
    them (1e-7); any non-finite probability makes the loss NaN.

    Args:
        probabilities: array ``(n, classes)``.
        labels: integer labels ``(n,)``.

    Returns:
        ``(loss, accuracy)`` as floats.

    Example:
    >>> loss_and_accuracy([[0.9, 0.1], [0.2, 0.8]], [0, 0])
    (0.857..., 0.5)
    """
    import numpy as np

    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} predictions but {len(labels)} labels.")
    eps = 1e-7  # Keras' clipping of probabilities in sparse categorical cross-entropy
    p_true = np.clip(probs[np.arange(len(labels)), labels], eps, 1 - eps)
    loss = float(np.mean(-np.log(p_true))) if np.all(np.isfinite(probs)) else float("nan")
    return loss, float(np.mean(np.argmax(probs, axis=1) == labels))


def resolve_training(settings):
    """The training path a run takes: trainer, jit, dtype policy and group size, resolved here.

    ``None`` settings take `keras_attn.protocol.training.fast_path`'s choice for the
    current backend and device. Recorded as each record's ``training``.

    Args:
        settings: a `ProtocolSettings`.

    Returns:
        dict with ``jit_compile`` (bool), ``mixed_precision`` (str or None),
        ``group_size`` (int: runs trained at once; 1 for ``model.fit``), ``backend``,
        ``fast_path_reason``, ``trainer`` (``"fit"`` or ``"jax"``) and ``precision``
        (the setting, or ``"default"``).

    Example:
        >>> from keras_attn.protocol import ProtocolSettings
        >>> t = resolve_training(ProtocolSettings(jit_compile=False, trainer="fit"))
        >>> t["jit_compile"], t["group_size"], t["mixed_precision"], t["trainer"]
        (False, 1, None, 'fit')
    """
    fast = fast_path()
    jit = fast["jit_compile"] if settings.jit_compile is None else settings.jit_compile
    import keras

    backend = keras.backend.backend()
    trainer = settings.trainer
    if trainer is None:  # mixed_float16 needs Keras' loss scaling: model.fit
        jax_ok = backend == "jax" and settings.mixed_precision != "mixed_float16"
        trainer = "jax" if jax_ok else "fit"
    elif trainer == "jax" and backend != "jax":
        raise ValueError(f"trainer='jax' needs the JAX backend; this is {backend!r}: use 'fit'.")
    elif trainer == "jax" and settings.mixed_precision == "mixed_float16":
        raise ValueError("trainer='jax' has no loss scaling for mixed_float16; use 'fit'.")
    jax_only = {k: getattr(settings, k) for k in ("group_size", "grad_form", "epoch_form")}
    if trainer != "jax" and any(v not in (None, 1) for v in jax_only.values()):
        given = ", ".join(f"{k}={v!r}" for k, v in jax_only.items() if v not in (None, 1))
        raise ValueError(
            f"{given}: a setting of the JAX trainer, and this run trains with model.fit "
            f"(trainer {trainer!r} on {backend!r}); use the JAX backend, or leave it unset."
        )
    group_size = 1
    if trainer == "jax":
        jit = True  # the JAX trainer compiles its steps
        group_size = fast["group_size"] if settings.group_size is None else settings.group_size
    return {
        "jit_compile": bool(jit),
        "mixed_precision": settings.mixed_precision,
        "group_size": int(group_size),
        "backend": backend,
        "fast_path_reason": fast["reason"],
        "trainer": trainer,
        "precision": settings.precision or "default",
    }
