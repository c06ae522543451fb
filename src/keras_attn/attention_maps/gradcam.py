"""Grad-CAM: where in the image a model finds its evidence for a class.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017. https://arxiv.org/abs/1610.02391
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_attn._checks import check_int, did_you_mean
from keras_attn.attention_maps.geometry import feature_grid, to_image
from keras_attn.attention_maps.sites import check_image, check_model

__all__ = ["class_index_of", "grad_cam", "gradcam_layer", "spatial_layers"]

# Layers that keep a feature map's channels but only shrink or mask it: Grad-CAM's default
# layer is the last feature map before them (the finest map of the last block).
_PASS_THROUGH = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.SpatialDropout2D,
    keras.layers.Dropout,
)


def _output_rank(layer):
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # not called, or called more than once
        return None


def spatial_layers(model):
    """Names of the layers of ``model`` whose output is a feature map ``(batch, h, w, c)``.

    These are the layers Grad-CAM can explain (the input and its rescaling excluded).

    Example:
    >>> import keras_attn
    >>> spatial_layers(keras_attn.build("cnn_eca", blocks=[8, 16]))[:3]
    ['block1_conv_a', 'site1_eca', 'block1_relu_a']
    """
    return [
        layer.name
        for layer in check_model(model).layers
        if _output_rank(layer) == 4
        and not isinstance(layer, (keras.layers.InputLayer, keras.layers.Rescaling))
    ]


def gradcam_layer(model):
    """The layer Grad-CAM explains by default: the last block's feature map before pooling.

    In a keras_attn model that is ``block{N}_norm_b`` (the last convolution, its
    attention, ReLU and BatchNorm): the finest map the classifier head sees.

    Example:
    >>> import keras_attn
    >>> gradcam_layer(keras_attn.build("cnn", blocks=[8, 16], dense_units=16))
    'block2_norm_b'
    """
    names = spatial_layers(model)
    kept = [n for n in names if not isinstance(model.get_layer(n), _PASS_THROUGH)]
    if not kept:
        raise ValueError(
            f"model {model.name!r} has no layer with a feature map (batch, height, width, "
            "channels) for Grad-CAM to explain."
        )
    return kept[-1]


def class_index_of(value, class_names=None, num_classes=None):
    """The index of a class given by name (one of ``class_names``) or by index (int or digits).

    Args:
        value: str or int, e.g. ``"cat"``, ``"3"`` or ``3``.
        class_names: list of str or None: the names ``value`` may be.
        num_classes: int or None (default: ``len(class_names)``): indices must be below it.

    Raises:
        ValueError: an unknown name or an index out of range, naming the valid ones.

    Example:
    >>> names = ["airplane", "automobile", "bird", "cat"]
    >>> class_index_of("cat", names), class_index_of("2", names), class_index_of(1, names)
    (3, 2, 1)
    """
    names = list(class_names) if class_names is not None else []
    count = num_classes if num_classes is not None else len(names) or None
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 0
        or (count is not None and value >= count)
    ):
        valid = f"a class index 0..{count - 1}" if count is not None else "a class index >= 0"
        if names:
            valid += f" or a name: {', '.join(names)}"
        raise ValueError(
            f"Unknown class {value!r}.{did_you_mean(value, names) if names else ''} Give {valid}."
        )
    return int(value)


def _checked_layer(model, layer):
    names = spatial_layers(model)
    if layer is None:
        return model.get_layer(gradcam_layer(model))
    if not isinstance(layer, str) or layer not in names:
        raise ValueError(
            f"`layer` must name a layer of model {model.name!r} whose output is a feature map "
            f"(batch, height, width, channels), got {layer!r}.{did_you_mean(layer, names)} "
            f"Valid: {', '.join(names)}."
        )
    return model.get_layer(layer)


def _score_tensor(model):
    """The class scores Grad-CAM differentiates: the logits (before softmax) when named."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("logits").output if "logits" in names else model.outputs[0]


def _gradient(fn, x):
    """``d fn(x) / dx`` for a scalar ``fn``, with the backend's own differentiation."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return tape.gradient(y, x)
    if backend == "jax":
        import jax

        return jax.grad(fn)(x)
    if backend == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x), x)
        return grad
    raise ValueError(
        f"Grad-CAM needs gradients: use the tensorflow, jax or torch backend, not {backend!r}."
    )


def grad_cam(model, image, class_index=None, layer=None):
    """The Grad-CAM heatmap of one image for one class: where the evidence for it lies.

    The gradient of the class's logit with respect to a layer's feature map,
    averaged over positions, weighs each channel of that map; the weighted sum,
    through a ReLU, is resampled (bilinear) onto the image, each position at
    the centre of its receptive field (`feature_grid`), and divided by its
    maximum. High values mark the regions that raise the class's score.

    Args:
        model: a Keras model (any keras_attn variant, ``cnn`` included).
        image: array ``(height, width, channels)`` of raw pixels 0..255 at the
            model's input size (see `keras_attn.predict.load_images`).
        class_index: int or None, default None (the predicted class).
        layer: str or None, default None: the layer whose feature map is used
            (`spatial_layers` lists the valid ones); None takes `gradcam_layer`.

    Returns:
        float32 array ``(height, width)`` in [0, 1]; all zeros when nothing in
        the map raises the class's score.

    Raises:
        ValueError: not a Keras model, an image of another shape, a class
            index out of range, or a layer without a feature map.

    Example:
    >>> import numpy as np
    >>> import keras_attn
    >>> model = keras_attn.build("cnn_eca", blocks=[8, 16], dense_units=16)
    >>> image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype="uint8")
    >>> heat = grad_cam(model, image, class_index=3)
    >>> heat.shape, heat.dtype, bool(0 <= heat.min() <= heat.max() <= 1)
    ((32, 32), dtype('float32'), True)
    """
    check_model(model)
    image = check_image(model, image)
    target = _checked_layer(model, layer)
    features_of = keras.Model(model.inputs[0], target.output)
    try:
        scores_of = keras.Model(target.output, _score_tensor(model))
    except ValueError as err:
        raise ValueError(
            f"Grad-CAM cannot use layer {target.name!r}: the model's output must depend on the "
            f"input only through it ({err})"
        ) from None
    classes = int(scores_of.output.shape[-1])
    if class_index is not None:
        check_int("class_index", class_index, 0)
        if class_index >= classes:
            raise ValueError(
                f"`class_index` must be in [0, {classes - 1}] for model {model.name!r} "
                f"({classes} classes), got {class_index!r}."
            )
    features = features_of(image[None].astype("float32"), training=False)
    if class_index is None:  # the predicted class
        class_index = np.argmax(ops.convert_to_numpy(scores_of(features, training=False)))
    class_index = int(class_index)
    grads = _gradient(lambda a: scores_of(a, training=False)[0, class_index], features)
    weights = ops.mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel
    cam = ops.convert_to_numpy(ops.relu(ops.sum(features * weights, axis=-1)))[0]
    cam = to_image(np.nan_to_num(cam), feature_grid(model, target.name), image.shape[:2])
    peak = float(cam.max())
    return np.clip(cam / peak if peak > 0 else np.zeros_like(cam), 0.0, 1.0).astype("float32")
