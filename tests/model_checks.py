"""One helper every registered variant's test goes through (after keras-hub's ``run_model_test``).

`run_model_test` checks, for one variant (a registry name or a config):
- the forward pass gives class probabilities (finite, summing to 1);
- one training step changes every attention weight (gradients reach them all), and a
  variant without attention has none;
- the ``.keras`` round trip gives the same class, config and predictions, without
  custom objects;
- the exact trainable parameter count, when one is given.
It runs on whatever backend ``KERAS_BACKEND`` selects (tests/test_backends.py reruns the
callers under JAX and PyTorch).
"""

import keras
import numpy as np

import keras_attn


def images(n, shape=(32, 32, 3), seed=0):
    """Float32 pixel values in [0, 255)."""
    return np.random.default_rng(seed).uniform(0, 255, size=(n, *shape)).astype("float32")


def run_model_test(name, tmp_path, *, expected_trainable_params=None, overrides=None):
    model = keras_attn.build(name, **(overrides or {}))
    if expected_trainable_params is not None:
        assert keras_attn.count_trainable_params(model) == expected_trainable_params
    shape = tuple(model.input_shape[1:])
    x = images(8, shape)
    y = np.arange(8) % model.output_shape[-1]
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (8, model.output_shape[-1]) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    # One training step changes every attention weight (gradients reach them all).
    attention_weights = [w for _, layer in model.attention_layers for w in layer.trainable_weights]
    has_learned_attention = any(layer.trainable_weights for _, layer in model.attention_layers)
    assert bool(attention_weights) == has_learned_attention
    before = [keras.ops.convert_to_numpy(w).copy() for w in attention_weights]
    # TensorFlow and PyTorch: eager steps, as XLA / torch.compile would dominate this test
    # (compiled vs eager is checked in test_benchmark). JAX: its jit, which on
    # JAX compiles faster than the op-by-op dispatch of an eager step (5 s vs 15 s).
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        jit_compile=keras.backend.backend() == "jax",
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for w, old in zip(attention_weights, before):
        assert not np.array_equal(keras.ops.convert_to_numpy(w), old), w.path

    # .keras round trip: same class, same config, same predictions, no custom objects.
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.model_config == model.model_config
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
    return model
