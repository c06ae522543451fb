"""The arithmetic precision a run computes in, applied to the backend and read back.

Float32 convolutions and matrix products do not always compute in float32: on NVIDIA
Ampere and Hopper GPUs JAX (and TensorFlow, and PyTorch's cuDNN convolutions) use
TF32 tensor cores by default, 10 mantissa bits instead of 23. The ``precision``
setting (`keras_attn.protocol.ProtocolSettings`) names the math explicitly:

- ``None`` (the default): the backend's own default on this device: float32 on a
  CPU; TF32 convolutions and matrix products under JAX on an Ampere or newer GPU.
- ``"float32"``: full float32 everywhere (JAX ``jax_default_matmul_precision``
  ``"float32"``, TensorFlow and PyTorch with TF32 off).
- ``"tf32"``: TF32 convolutions and matrix products where the device has them
  (float32 elsewhere, e.g. on a CPU).
- ``"bf16"`` / ``"fp16"``: the models are built under Keras' ``mixed_bfloat16`` /
  ``mixed_float16`` policy (half-precision compute, float32 weights; the softmax stays
  float32); ``fp16`` trains with ``model.fit``'s loss scaling.

`apply_precision` sets the process-wide switch for the current backend;
`precision_in_use` reads it back for the records.
"""

from __future__ import annotations

from keras_attn.runtime import backend as current_backend

__all__ = ["apply_precision", "precision_in_use"]

# What JAX's jax_default_matmul_precision is set to for each precision (None: JAX's default).
_JAX = {None: None, "float32": "float32", "tf32": "tensorfloat32", "bf16": None, "fp16": None}


def apply_precision(precision, backend=None):
    """Set the current backend's process-wide matmul and convolution precision.

    ``None``, ``"bf16"`` and ``"fp16"`` restore the backend's default (a mixed
    precision is a dtype policy, applied when the models are built). Call it before a model's step
    is compiled: compiled functions keep the precision they were traced with.

    Args:
        precision: ``None`` or one of `keras_attn.protocol.settings.PRECISIONS`.
        backend: ``"jax"``, ``"tensorflow"`` or ``"torch"`` (default: Keras' current).

    Returns:
        `precision_in_use` after the change.

    Example:
        >>> apply_precision(None)["precision"]
        'default'
    """
    backend = backend or current_backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", _JAX[precision])
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(precision != "float32")
    elif backend == "torch":
        import torch

        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision != "float32"
    return precision_in_use(precision, backend)


def precision_in_use(precision=None, backend=None):
    """What a record says about its arithmetic: the setting and the backend's live switch.

    Example:
        >>> sorted(precision_in_use("float32"))
        ['backend_switch', 'precision']
    """
    backend = backend or current_backend()
    switch = None
    if backend == "jax":
        import jax

        value = jax.config.jax_default_matmul_precision
        switch = f"jax_default_matmul_precision={value or 'default'}"
    elif backend == "tensorflow":
        import tensorflow as tf

        on = tf.config.experimental.tensor_float_32_execution_enabled()
        switch = f"tensor_float_32_execution={'on' if on else 'off'}"
    elif backend == "torch":
        import torch

        switch = (
            f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
            f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}"
        )
    return {"precision": precision or "default", "backend_switch": switch}
