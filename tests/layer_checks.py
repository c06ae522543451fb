"""One helper every attention layer's test goes through (after keras-hub's ``run_layer_test``).

`run_layer_test` checks, for one layer class and its arguments:
- symbolic and eager calls give the expected output shape, and the number of
  trainable weights is the expected one;
- ``gate(x)`` is a mask in [0, 1] and ``call(x) == x * gate(x)``; a layer without
  ``gate`` adds to its input (`keras_attn.layers.GlobalContext`):
  ``call(x) == x + transform(x)``;
- ``get_config`` round-trips through JSON, both directly and through
  ``keras.saving.serialize_keras_object``, into a layer with the same config
  and, given the same weights, the same outputs;
- one ``fit`` step of a small model around the layer changes every trainable
  weight of the layer (gradients reach them all), except the ones named in
  ``constant_gradient``: a bias added to every logit of a softmax (the GC block's
  ``attend/bias``) has a zero gradient by construction, so it stays put up to
  rounding (checked) and may or may not move by a rounding error;
- the layer runs under the ``mixed_bfloat16`` policy.
It runs on whatever backend ``KERAS_BACKEND`` selects.
"""

import json
import math

import keras
import numpy as np


def _gate(layer, x):
    try:
        return layer.gate(x, training=False)
    except TypeError:
        return layer.gate(x)


def run_layer_test(
    cls, init_kwargs, input_shape, expected_trainable_params, batch=2, constant_gradient=()
):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *input_shape)).astype("float32")

    # Shapes: symbolic and eager.
    layer = cls(**init_kwargs)
    symbolic = layer(keras.Input(input_shape))
    assert tuple(symbolic.shape) == (None, *input_shape)
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.shape == x.shape
    assert np.all(np.isfinite(y))
    n_params = sum(math.prod(w.shape) for w in layer.trainable_weights)
    assert n_params == expected_trainable_params, (n_params, expected_trainable_params)

    if hasattr(layer, "gate"):
        # The gate is a mask in [0, 1] and the layer applies it multiplicatively.
        mask = keras.ops.convert_to_numpy(_gate(layer, x))
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        np.testing.assert_allclose(y, x * mask, rtol=1e-5, atol=1e-5)
    else:
        # An additive block: the output is the input plus what it adds.
        added = keras.ops.convert_to_numpy(layer.transform(x))
        np.testing.assert_allclose(y, x + added, rtol=1e-5, atol=1e-5)

    # Config round trip through JSON, then same weights -> same outputs.
    config = layer.get_config()
    clone = cls.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    clone.build((None, *input_shape))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), y, rtol=1e-5, atol=1e-5)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    assert serialized["registered_name"] == f"keras_attn>{cls.__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls and revived.get_config() == config

    # One training step changes every trainable weight of the layer.
    layer = cls(**init_kwargs)
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            layer,
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = [keras.ops.convert_to_numpy(w).copy() for w in layer.trainable_weights]
    targets = rng.normal(size=(batch, 3)).astype("float32") * 10
    model.fit(x, targets, batch_size=batch, epochs=1, verbose=0)
    for w, old in zip(layer.trainable_weights, before):
        new = keras.ops.convert_to_numpy(w)
        if any(w.path.endswith(name) for name in constant_gradient):
            np.testing.assert_allclose(new, old, atol=1e-4, err_msg=w.path)
        else:
            assert not np.array_equal(new, old), f"training did not change {w.path}"

    # Mixed precision: runs, and its output has the compute dtype.
    mixed = cls(**init_kwargs, dtype="mixed_bfloat16")
    out = mixed(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert tuple(out.shape) == x.shape
