"""Gates in the networks people fine-tune, starting as the identity: keras.applications'
ResNet50, MobileNetV3Small, EfficientNetV2B0 and ConvNeXtTiny (built offline, weights=None,
32x32 inputs), and keras-hub's ResNet and EfficientNet backbones where keras-hub is installed.

For each: ``after="blocks"`` finds every residual block; every registered gate, inserted
with ``start="identity"`` at the last two blocks with at least 2x2 positions, leaves the
outputs as they were; a training step of the fine-tuning recipe's first stage
trains the gates; the ``.keras`` file reloads with the same outputs; the original model is
untouched. The gates are inserted once per network (module-scoped): the networks are big.
"""

import importlib.util
import sys

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.finetune import set_stage
from keras_attn.layers import BlendedGate, list_gates
from keras_attn.residual import residual_branch_ends

SIZE = 32
#: (builder, residual blocks it has: the count of the papers' networks).
APPS = {
    "ResNet50": (keras.applications.ResNet50, 16),
    "MobileNetV3Small": (keras.applications.MobileNetV3Small, 6),
    "EfficientNetV2B0": (keras.applications.EfficientNetV2B0, 15),
    "ConvNeXtTiny": (keras.applications.ConvNeXtTiny, 18),
}
#: Every registered gate; the conv-AE gate one stage deep, so that it fits a 2x2 map.
GATES = list(list_gates())
OPTIONS = {"conv_ae": {"filters": [2]}}


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _sites(model):
    """The last two residual blocks' ends whose maps have 2x2 positions or more (SimAM needs
    two positions), near the output so that a training step backpropagates through little."""
    ends = residual_branch_ends(model)
    shapes = {op.name: op.output.shape for op in model.operations if op.name in ends}
    return ends, [name for name in ends if min(shapes[name][1:3]) >= 2][-2:]


def _inserted(base):
    """``(base, its weights, gated model, sites, inputs, base outputs)`` for one network."""
    weights = [w.copy() for w in base.get_weights()]
    ends, sites = _sites(base)
    model = keras_attn.insert_attention(base, GATES, after=sites, start="identity", **OPTIONS)
    x = np.random.default_rng(0).uniform(0, 255, (2, *base.input_shape[1:])).astype("float32")
    return {
        "base": base,
        "weights": weights,
        "ends": ends,
        "sites": sites,
        "model": model,
        "x": x,
        "expected": _numpy(base(x, training=False)),
    }


#: A training step and a round trip of ResNet50 or ConvNeXtTiny take 8-16 s on a busy CPU.
HEAVY = ("ResNet50", "ConvNeXtTiny")


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=[pytest.mark.slow] if n in HEAVY else []) for n in APPS],
)
def app(request):
    keras.utils.set_random_seed(0)
    build, _ = APPS[request.param]
    return request.param, _inserted(build(weights=None, input_shape=(SIZE, SIZE, 3), classes=10))


def test_after_blocks_finds_every_residual_block(app):
    name, found = app
    ends = found["ends"]
    assert len(ends) == APPS[name][1]
    base = found["base"]
    for end in ends:  # each one feeds an add of two feature maps
        readers = [
            op
            for op in base.operations
            for node in op._inbound_nodes
            if any(t._keras_history.operation.name == end for t in node.input_tensors)
        ]
        assert any(type(op).__name__ == "Add" for op in readers), (name, end)


def test_every_gate_starts_as_the_identity(app):
    name, found = app
    model = found["model"]
    blended = [layer for layer in model.layers if isinstance(layer, BlendedGate)]
    # Every gate at both sites, blended, except gca, which starts as the identity itself.
    kinds = sorted({type(layer.layer).__name__ for layer in blended})
    assert len(blended) == 2 * (len(GATES) - 1) and len(kinds) == len(GATES) - 1
    assert {f"{site}_gca" for site in found["sites"]} <= {layer.name for layer in model.layers}
    diff = float(np.abs(_numpy(model(found["x"], training=False)) - found["expected"]).max())
    print(f"{name}: {len(blended) + 2} gates at {found['sites']}, largest difference {diff:.1e}")
    assert diff <= 1e-6


def test_a_training_step_then_the_keras_round_trip_and_the_original_untouched(app, tmp_path):
    name, found = app
    model, x = found["model"], found["x"]
    set_stage(model, "gates")  # the fine-tuning recipe's first stage
    blended = [layer for layer in model.layers if isinstance(layer, BlendedGate)]
    eager = keras.backend.backend() != "jax"
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
        run_eagerly=eager,
        jit_compile=not eager,
    )
    history = model.fit(x, np.array([1, 3]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(float(_numpy(layer.alpha)) != 0.0 for layer in blended)
    # The original keeps its weights, BatchNorm statistics included.
    for old, now in zip(found["weights"], found["base"].get_weights(), strict=True):
        np.testing.assert_array_equal(now, old)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _numpy(again(x, training=False)), _numpy(model(x, training=False)), rtol=1e-5, atol=1e-6
    )
    assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


# --------------------------------------------------------------------------- keras-hub


def _keras_hub():
    """keras_hub, or a skip saying why (the ``hub`` extra is not installed)."""
    if importlib.util.find_spec("keras_hub") is None:
        pytest.skip("keras-hub is not installed (pip install 'keras_attn[hub]')")
    if "tensorflow" in sys.modules:
        sys.modules.setdefault("triton", None)  # see test_layers_literature.py
    try:
        import keras_hub
    except ImportError as error:  # pragma: no cover - depends on the environment
        pytest.skip(f"keras-hub does not import beside Keras {keras.__version__}: {error}")
    return keras_hub


def _hub_resnet(hub):
    return hub.models.ResNetBackbone(
        input_conv_filters=[8],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],  # keras-hub requires 64 first
        stackwise_num_blocks=[2, 2],
        stackwise_num_strides=[1, 2],
        block_type="bottleneck_block",
        image_shape=(SIZE, SIZE, 3),
    )


def _hub_efficientnet(hub):
    return hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0, 1.0],
        stackwise_depth_coefficients=[1.0, 1.0],
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[2, 2],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "v1"],
        input_shape=(SIZE, SIZE, 3),
        num_features=32,
    )


@pytest.mark.parametrize("backbone", [_hub_resnet, _hub_efficientnet])
def test_keras_hub_backbones_take_gates_as_the_identity(backbone, tmp_path):
    hub = _keras_hub()
    keras.utils.set_random_seed(0)
    base = backbone(hub)
    found = _inserted(base)
    model = found["model"]
    assert found["ends"], "no residual block found"
    diff = float(np.abs(_numpy(model(found["x"], training=False)) - found["expected"]).max())
    print(f"{base.name}: {len(found['ends'])} blocks, largest difference {diff:.1e}")
    assert diff <= 1e-6
    # A classifier on top, one step of the first stage, the .keras round trip.
    head = keras.layers.Dense(10, activation="softmax", name="head")
    classifier = keras.Model(model.input, head(keras.layers.GlobalAveragePooling2D()(model.output)))
    set_stage(classifier, "gates")
    eager = keras.backend.backend() != "jax"
    classifier.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=eager)
    classifier.fit(found["x"], np.array([1, 3]), verbose=0)
    for old, now in zip(found["weights"], base.get_weights(), strict=True):
        np.testing.assert_array_equal(now, old)
    classifier.save(tmp_path / "hub.keras")
    again = keras.saving.load_model(tmp_path / "hub.keras")
    np.testing.assert_allclose(
        _numpy(again(found["x"])), _numpy(classifier(found["x"])), rtol=1e-5, atol=1e-6
    )
