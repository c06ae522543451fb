"""`keras_attn.finetune`: which layers train in each stage, BatchNorm kept in inference mode,
the second stage's lower learning rate, on a small ResNet with gates inserted as the identity."""

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.finetune import fine_tune, gate_layers, head_layers, set_stage

# Eager steps on TensorFlow and PyTorch (tracing would dominate a few steps); JAX: its jit.
EAGER = {"compile_kwargs": {"run_eagerly": keras.backend.backend() != "jax"}}


def _values(layer):
    return [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]


def _changed(before, layer):
    return any(not np.array_equal(b, a) for b, a in zip(before, _values(layer)))


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    base = keras_attn.build("resnet20", depth=8, widths=[4, 8, 8], input_shape=(8, 8, 3))
    return keras_attn.insert_attention(base, "se", after="blocks", start="identity", reduction=2)


def test_the_two_stages_train_what_they_say_and_keep_batchnorm_statistics(model):
    x = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 10
    gates = gate_layers(model)
    assert [g.name for g in gates] == ["block1_bn_b_se", "block2_bn_b_se", "block3_bn_b_se"]
    assert [layer.name for layer in head_layers(model)] == ["logits"]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    conv, stem = model.get_layer("block2_conv_b"), model.get_layer("stem_conv")
    before = {layer.name: _values(layer) for layer in [*gates, *bns, conv, stem]}

    first, second = fine_tune(model, x, y, epochs=(1, 0), batch_size=8, verbose=0, **EAGER)
    assert second is None and len(first.history["loss"]) == 1
    assert all(_changed(before[g.name], g) for g in gates)  # alpha (step 1), the gates (step 2)
    assert all(float(keras.ops.convert_to_numpy(g.alpha)) != 0.0 for g in gates)
    assert not _changed(before[conv.name], conv) and not _changed(before[stem.name], stem)
    assert not any(_changed(before[bn.name], bn) for bn in bns)  # nor their moving statistics

    _, second = fine_tune(
        model, x, y, epochs=(0, 1), learning_rates=(1e-3, 1e-4), batch_size=8, verbose=0, **EAGER
    )
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)
    assert _changed(before[conv.name], conv) and _changed(before[stem.name], stem)
    assert not any(_changed(before[bn.name], bn) for bn in bns)  # inference mode throughout


def test_set_stage_errors():
    plain = keras_attn.build("resnet20", depth=8, widths=[4, 4, 4], input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="has no attention gates to fine-tune"):
        set_stage(plain, "gates")
    gated = keras_attn.build("resnet20_eca", depth=8, widths=[4, 4, 4], input_shape=(8, 8, 3))
    with pytest.raises(ValueError, match=r"`stage` must be one of \('gates', 'all'\), got 'head'"):
        set_stage(gated, "head")
    with pytest.raises(ValueError, match=r"`head` names no layer .*\['classifier'\]"):
        set_stage(gated, "gates", head=["classifier"])
    with pytest.raises(ValueError, match="one value per stage"):
        fine_tune(gated, np.zeros((1, 8, 8, 3)), np.zeros(1), epochs=(1,))
    assert set_stage(gated, "all", head="logits")[:2] == ["stem_conv", "block1_conv_a"]
