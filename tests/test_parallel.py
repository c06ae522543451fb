"""Packed training (keras_attn.parallel): N copies trained at once equal N runs trained alone."""

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.data import ArrayBatches
from keras_attn.parallel import (
    PackedBatches,
    build_copies,
    compile_packed,
    evaluate_copies,
    pack_models,
)

SMALL = {
    "input_shape": [12, 12, 3],
    "blocks": [4, 8],
    "dense_units": 16,
    "conv_ae": {"filters": [4]},
}
SEEDS = [3, 11]


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8), rng.integers(0, 10, n)


def test_copies_start_as_their_single_runs():
    copies = build_copies("cnn_eca", SEEDS, **SMALL)
    assert [m.name for m in copies] == ["copy0", "copy1"]
    for seed, copy in zip(SEEDS, copies):
        keras.utils.set_random_seed(seed)
        single = keras_attn.build("cnn_eca", **SMALL)
        for a, b in zip(_values(single.variables), _values(copy.variables)):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(_values(copies[0].weights)[0], _values(copies[1].weights)[0])


def test_packed_batches_are_each_copys_own():
    x, y = _data()
    packed = PackedBatches(x, y, 8, SEEDS)
    packed.set_epoch(2)
    assert len(packed) == 3
    for i, seed in enumerate(SEEDS):
        alone = ArrayBatches(x, y, 8, shuffle=True, seed=seed)
        alone.set_epoch(2)
        for j in range(len(packed)):
            xs, ys = packed[j]
            np.testing.assert_array_equal(xs[i], alone[j][0])
            np.testing.assert_array_equal(ys[i], alone[j][1])


def test_packed_training_matches_separate_runs():
    """Two epochs of the packed model == two epochs of each copy alone (weights, BN stats).

    One network holds every attention block at every site, so the check covers them all.
    test_backends.py runs this test again under JAX and PyTorch.
    """
    name = "cnn"
    overrides = dict(SMALL, attention=["eca", "cbam", "conv_ae", "linear_ae"], sites=[1, 4])
    if keras.backend.backend() == "torch":
        # Keras' torch dropout draws from torch's global generator, not from the layer's
        # seed, so masks depend on the order of calls: compare without dropout there.
        overrides.update(dropout=0.0, spatial_dropout=0.0)
    x, y = _data()

    def optimizer():
        return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)

    copies = build_copies(name, SEEDS, **overrides)
    packed = compile_packed(pack_models(copies), optimizer(), jit_compile=False)
    batches = PackedBatches(x, y, 8, SEEDS)
    for epoch in range(2):
        batches.set_epoch(epoch)
        history = packed.fit(batches, epochs=1, shuffle=False, verbose=0).history
    assert {"copy0_loss", "copy1_loss", "copy0_accuracy", "copy1_accuracy"} <= set(history)

    for seed, copy in zip(SEEDS, copies):
        keras.utils.set_random_seed(seed)
        single = keras_attn.build(name, **overrides)
        single.compile(optimizer(), "sparse_categorical_crossentropy", jit_compile=False)
        alone = ArrayBatches(x, y, 8, shuffle=True, seed=seed)
        for epoch in range(2):
            alone.set_epoch(epoch)
            single.fit(alone, epochs=1, shuffle=False, verbose=0)
        assert len(single.variables) == len(copy.variables)
        for v, a, b in zip(single.variables, _values(single.variables), _values(copy.variables)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=v.path)


def test_evaluate_copies_matches_each_model():
    x, y = _data(20)
    copies = build_copies("cnn", SEEDS, **SMALL)
    packed = pack_models(copies)
    results = evaluate_copies(packed, x, y, batch_size=8)
    assert len(results) == 2
    for copy, res in zip(copies, results):
        probs = np.asarray(copy.predict(x.astype("float32"), verbose=0), dtype=np.float64)
        assert res["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
        p_true = np.clip(probs[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
        assert res["loss"] == pytest.approx(np.mean(-np.log(p_true)), rel=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="seeds"):
        build_copies("cnn", [])
    with pytest.raises(ValueError, match="seeds"):
        build_copies("cnn", [1, -2])
    with pytest.raises(ValueError, match="empty"):
        pack_models([])
    same = [keras_attn.build("cnn", **SMALL), keras_attn.build("cnn", **SMALL)]
    with pytest.raises(ValueError, match="distinct names"):
        pack_models(same)
    packed = pack_models(build_copies("cnn", [0, 1], **SMALL))
    with pytest.raises(ValueError, match="global norm"):
        compile_packed(packed, keras.optimizers.SGD(0.1, global_clipnorm=1.0))
    x, y = _data(4)
    with pytest.raises(ValueError, match="labels"):
        evaluate_copies(packed, x, y[:3])
