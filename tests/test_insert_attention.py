"""`keras_attn.insert_attention` on Keras' own applications (MobileNetV2, ResNet50) and on
small hand-made models: where the gates go, the weights kept, a training step, the ``.keras``
round trip, and the errors for an ``after`` that picks nothing valid.
"""

import math

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.attention_maps import attention_layers, attention_maps
from keras_attn.layers import CBAM, ECA, BlendedGate


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _eca_params(channels):  # ECA-Net's adaptive kernel, no bias
    t = int(abs((math.log2(channels) + 1) / 2))
    return t if t % 2 else t + 1


def _cbam_params(c, reduction=16):
    h = max(c // reduction, 1)
    return 2 * c * h + h + c + 7 * 7 * 2 + 2


APPS = {
    # (builder, input shape, gate, after, gate class, its parameter formula)
    "mobilenetv2": (
        lambda: keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10),
        (96, 96, 3),
        "eca",
        lambda layer: layer.name.endswith("_project_BN"),
        ECA,
        _eca_params,
    ),
    "resnet50": (
        lambda: keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10),
        (32, 32, 3),
        "cbam",
        lambda layer: layer.name.endswith("_3_bn"),
        CBAM,
        _cbam_params,
    ),
}


def _sources(layer):
    """Names of the layers whose outputs ``layer`` reads."""
    if isinstance(layer, keras.layers.InputLayer):
        return set()
    inputs = layer.input if isinstance(layer.input, list) else [layer.input]
    return {t._keras_history.operation.name for t in inputs}


@pytest.fixture(scope="module", params=list(APPS))
def inserted(request):
    """``(name, base, model, base weights before)`` with the gates inserted, once per app."""
    build, _, gate, after, _, _ = APPS[request.param]
    keras.utils.set_random_seed(0)
    base = build()
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in base.layers}
    model = keras_attn.insert_attention(base, gate, after=after)
    return request.param, base, model, before


def test_gates_follow_every_chosen_layer_and_feed_what_it_fed(inserted):
    name, base, model, _ = inserted
    _, _, gate, after, gate_class, formula = APPS[name]
    chosen = [layer for layer in base.layers if after(layer)]
    gates = [layer for layer in model.layers if isinstance(layer, gate_class)]
    assert chosen and len(gates) == len(chosen)
    for layer, g in zip(chosen, gates):
        assert g.name == f"{layer.name}_{gate}"
        assert g.input._keras_history.operation.name == layer.name
        # What the chosen layer fed in the original now reads the gate instead.
        readers = [c for c in model.layers if layer.name in _sources(c)]
        assert readers == [g], [c.name for c in readers]
    added = sum(formula(layer.output.shape[-1]) for layer in chosen)
    assert keras_attn.count_trainable_params(model) == (
        keras_attn.count_trainable_params(base) + added
    )
    assert model.output_shape == base.output_shape and model.name == base.name


def test_the_original_weights_are_in_the_new_model(inserted):
    _, base, model, before = inserted
    for layer in base.layers:
        for old, new in zip(before[layer.name], model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(new, old, err_msg=layer.name)
    assert {layer.name for layer in base.layers} <= {layer.name for layer in model.layers}


def test_a_training_step_then_the_keras_round_trip(inserted, tmp_path):
    name, base, model, before = inserted
    shape = APPS[name][1]
    x = np.random.default_rng(0).uniform(-1, 1, (2, *shape)).astype("float32")
    y = np.array([1, 3])
    gate_class = APPS[name][4]
    gate_weights = [
        w
        for layer in model.layers
        if isinstance(layer, gate_class)
        for w in layer.trainable_weights
    ]
    start = [keras.ops.convert_to_numpy(w).copy() for w in gate_weights]
    # Eager steps (as tests/model_checks.py): tracing or XLA-compiling these graphs would
    # dominate the test. JAX: its jit.
    eager = keras.backend.backend() != "jax"
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        run_eagerly=eager,
        jit_compile=not eager,
    )
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.array_equal(keras.ops.convert_to_numpy(w), s) for w, s in zip(gate_weights, start)
    )
    # Training the new model leaves the original as it was.
    for layer in base.layers:
        for old, now in zip(before[layer.name], layer.get_weights()):
            np.testing.assert_array_equal(now, old, err_msg=layer.name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(again(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


def test_bad_after_names_what_would_do(inserted):
    _, base, _, _ = inserted
    with pytest.raises(ValueError, match=r"no layer named 'nope'.* feature maps .* are: "):
        keras_attn.insert_attention(base, "eca", after=["nope"])
    with pytest.raises(ValueError, match="`after` matched no layer of model"):
        keras_attn.insert_attention(base, "eca", after=lambda layer: False)
    last = base.layers[-1].name
    with pytest.raises(ValueError, match=f"{last!r} of model .* not output one"):
        keras_attn.insert_attention(base, "eca", after=[last])


# --------------------------------------------------------------------------- small models


def _tiny():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(8, 3, name="conv_two")(x)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inputs, outputs, name="tiny")


def test_typos_get_a_did_you_mean_and_bad_gates_a_list():
    with pytest.raises(ValueError, match="Did you mean 'conv_two'"):
        keras_attn.insert_attention(_tiny(), "eca", after="conv_tow")
    with pytest.raises(ValueError, match="Did you mean 'eca'"):
        keras_attn.insert_attention(_tiny(), "ecaa", after="conv")
    with pytest.raises(ValueError, match="kernel_size"):
        keras_attn.insert_attention(_tiny(), "eca", after="conv", kernel_size=0)
    with pytest.raises(ValueError, match="not functional"):

        class Sub(keras.Model):
            def call(self, x):
                return x

        keras_attn.insert_attention(Sub(), "eca", after="conv")


def test_several_gates_a_callable_a_sequential_and_a_shared_layer():
    model = keras_attn.insert_attention(_tiny(), ["eca", "cbam_spatial"], after="bn")
    assert [layer.name for layer in model.layers][3:5] == ["bn_eca", "bn_cbam_spatial"]
    model = keras_attn.insert_attention(_tiny(), lambda: ECA(kernel_size=1, name="mine"), "conv")
    assert model.get_layer("mine").count_params() == 1
    seq = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 1, name="c")])
    assert keras_attn.insert_attention(seq, "eca", after="c").get_layer("c_eca")
    shared = keras.layers.Conv2D(2, 1, name="shared")
    inputs = keras.Input((4, 4, 2))
    outputs = shared(shared(inputs))
    model = keras_attn.insert_attention(keras.Model(inputs, outputs), "eca", after=["shared"])
    assert [layer.name for layer in model.layers if isinstance(layer, ECA)] == [
        "shared_eca",
        "shared_2_eca",
    ]


def test_into_a_keras_attn_model_keeps_its_weights():
    base = keras_attn.build("resnet20", depth=8, widths=[4, 8, 8], input_shape=(16, 16, 3))
    model = keras_attn.insert_attention(base, "eca", after=lambda x: x.name.endswith("_bn_b"))
    assert [site for site, _, _ in attention_layers(model)] == [1, 2, 3]
    x = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(
        model.get_layer("block2_conv_a").get_weights()[0],
        base.get_layer("block2_conv_a").get_weights()[0],
    )
    assert tuple(model(x, training=False).shape) == (2, 10)


# --------------------------------------------------------------------------- identity start


@pytest.mark.parametrize(
    "name, after",
    [("cnn", lambda layer: "_conv_" in layer.name), ("resnet20", "blocks")],
)
def test_every_registered_gate_starts_as_the_identity_in_the_cnn_and_resnet20(name, after):
    # Every registered gate, one after the other after each conv layer (the CNN) or at the
    # end of each residual branch (ResNet-20): the outputs are the model's, to the last bit.
    base = keras_attn.build(name)
    gates = list(keras_attn.layers.list_gates())
    model = keras_attn.insert_attention(base, gates, after=after, start="identity")
    x = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    blended = [layer for layer in model.layers if isinstance(layer, BlendedGate)]
    sites = sum(layer.name.endswith("_eca") for layer in blended)
    assert sites == (4 if name == "cnn" else 9)
    assert len(blended) == sites * (len(gates) - 1)  # gca starts as the identity itself
    diff = float(np.abs(_numpy(model(x, training=False)) - _numpy(base(x, training=False))).max())
    print(f"{name}: {len(gates)} gates at {sites} sites, largest difference {diff:.1e}")
    assert diff <= 1e-6
    maps = attention_maps(model, x[0])  # each blended gate shown by its effective mask: ones
    assert {m["alpha"] for m in maps if m["kind"] != "gca"} == {0.0}
    assert all(m["mask"].min() == 1.0 for m in maps if m["kind"] != "gca")


def test_start_must_be_gate_or_identity_and_options_go_under_each_gates_name():
    with pytest.raises(ValueError, match=r"`start` must be one of 'gate', 'identity', got 'zero'"):
        keras_attn.insert_attention(_tiny(), "eca", after="conv", start="zero")
    with pytest.raises(ValueError, match=r"each one's options under its name .*\['reduction'\]"):
        keras_attn.insert_attention(_tiny(), ["eca", "se"], after="conv", reduction=2)
    model = keras_attn.insert_attention(_tiny(), ["eca", "se"], after="conv", se={"reduction": 2})
    assert model.get_layer("conv_se").reduction == 2
    with pytest.raises(ValueError, match="found no residual block in model 'tiny'"):
        keras_attn.insert_attention(_tiny(), "eca", after="blocks")


def test_a_blended_gate_is_saved_and_a_callable_gate_is_blended_too(tmp_path):
    model = keras_attn.insert_attention(
        _tiny(), lambda: ECA(kernel_size=1, name="mine"), after="conv", start="identity"
    )
    layer = model.get_layer("mine_blended")
    assert isinstance(layer, BlendedGate) and layer.layer.name == "mine"
    layer.alpha.assign(0.25)
    model.save(tmp_path / "blended.keras")
    again = keras.saving.load_model(tmp_path / "blended.keras")
    assert again.get_layer("mine_blended").get_config() == layer.get_config()
    assert float(_numpy(again.get_layer("mine_blended").alpha)) == 0.25
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(_numpy(again(x)), _numpy(model(x)), atol=1e-6)
