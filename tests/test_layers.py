"""Every attention layer goes through `run_layer_test`; plus each layer's own facts.

Backend-neutral: `test_backends.py` runs this file again under JAX (and PyTorch
where it is installed).
"""

import json

import keras
import numpy as np
import pytest
from layer_checks import run_layer_test
from study_tables import gate_params

import keras_attn
from keras_attn.layers import (
    CBAM,
    ECA,
    ECAMLP,
    BlendedGate,
    CBAMChannelGate,
    CBAMSpatialGate,
    CircularECA,
    ConvAutoencoderGate,
    CoordinateAttention,
    EffectiveSqueezeExcitation,
    GatherExcite,
    GlobalContext,
    GlobalContextGate,
    LinearAutoencoderGate,
    SimAM,
    SqueezeExcitation,
    eca_kernel_size,
    final_geometry,
    max_depth,
)


def _serialized(layer):
    """A layer's serialized config (JSON), as `BlendedGate` takes and stores its gate."""
    return json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))


# (class, kwargs, input shape, trainable params). The study's counts are docs/study.md's
# per-gate table (sites 1-4 of `cnn`: 32x32x64, 30x30x64, 15x15x128, 13x13x128).
GATES = gate_params()
CASES = {
    "eca_c64": (ECA, {}, (8, 8, 64), GATES["eca"][0]),
    "eca_c128": (ECA, {}, (6, 6, 128), GATES["eca"][2]),
    "eca_fixed_k": (ECA, {"kernel_size": 7}, (4, 4, 16), 7),
    "cbam_channel": (CBAMChannelGate, {}, (8, 8, 64), GATES["cbam"][0] - GATES["cbam_spatial"][0]),
    "cbam_spatial": (CBAMSpatialGate, {}, (8, 8, 64), GATES["cbam_spatial"][0]),
    "cbam_c64": (CBAM, {}, (8, 8, 64), GATES["cbam"][0]),
    "cbam_c128": (CBAM, {}, (5, 7, 128), GATES["cbam"][2]),
    "conv_ae_site1": (ConvAutoencoderGate, {}, (32, 32, 64), GATES["conv_ae"][0]),
    "conv_ae_site2": (ConvAutoencoderGate, {}, (30, 30, 64), GATES["conv_ae"][1]),
    "conv_ae_site3": (ConvAutoencoderGate, {}, (15, 15, 128), GATES["conv_ae"][2]),
    "conv_ae_site4": (ConvAutoencoderGate, {"final_kernel": 2}, (13, 13, 128), GATES["conv_ae"][3]),
    "conv_ae_small": (
        ConvAutoencoderGate,
        {"filters": [4, 8], "final_kernel": 5, "activation": "gelu"},
        (9, 14, 3),
        # 3*16*4+4 + 4*16*8+8 + 8*16*4+4 + 4*25*3+3
        3 * 16 * 4 + 4 + 4 * 16 * 8 + 8 + 8 * 16 * 4 + 4 + 4 * 25 * 3 + 3,
    ),
    # SE: 2 C h + h + C, h = C / r rounded to a multiple of 8 (timm's rule) or given.
    "se_c64": (SqueezeExcitation, {}, (8, 8, 64), 2 * 64 * 8 + 8 + 64),
    "se_paper_width": (SqueezeExcitation, {"divisor": 1}, (5, 7, 128), 2 * 128 * 8 + 8 + 128),
    "se_hidden": (SqueezeExcitation, {"hidden": 3}, (4, 4, 6), 2 * 6 * 3 + 3 + 6),
    # GC (gca, added): 2 C m + 3 m + 2 C + 1, m = round(C / 8); the last conv not zero so that
    # one step reaches every weight (from zero, the first step only moves the last conv).
    "gca_c64": (GlobalContext, {"zero_init_last": False}, (8, 8, 64), 2 * 64 * 8 + 3 * 8 + 129),
    "gca_odd": (GlobalContext, {"zero_init_last": False, "hidden": 3}, (5, 7, 6), 36 + 9 + 13),
    # GC (gc, scaled): the same weights, a sigmoid channel mask.
    "gc_c64": (GlobalContextGate, {}, (8, 8, 64), 2 * 64 * 8 + 3 * 8 + 129),
    "gc_odd": (GlobalContextGate, {"hidden": 3}, (5, 7, 6), 36 + 9 + 13),
    # eSE: C^2 + C.
    "ese_c16": (EffectiveSqueezeExcitation, {}, (4, 4, 16), 16 * 16 + 16),
    # ECA-M: 2 m + k m + 1 (m = 8 at 64 channels, k = 3).
    "ecam_c64": (ECAMLP, {}, (6, 6, 64), 2 * 8 + 3 * 8 + 1),
    # CECA: k weights, circular padding.
    "ceca_c64": (CircularECA, {}, (6, 6, 64), 3),
    "ceca_k5_c4": (CircularECA, {"kernel_size": 5}, (3, 3, 4), 5),
    # GE: 2 C m + m + C with m = round(C / 16), or none without the MLP.
    "ge_extent2": (GatherExcite, {"extent": 2}, (7, 5, 32), 2 * 32 * 2 + 2 + 32),
    "ge_extent4_no_mlp": (GatherExcite, {"extent": 4, "use_mlp": False}, (9, 6, 3), 0),
    # A blended gate: the gate's weights and alpha (started at 0.5 so one step reaches all).
    "blend_eca": (
        BlendedGate,
        {"layer": _serialized(ECA(kernel_size=3)), "alpha": 0.5},
        (4, 4, 8),
        4,
    ),
    "blend_cbam": (
        BlendedGate,
        {"layer": _serialized(CBAM(reduction=4)), "alpha": 0.5},
        (6, 6, 16),
        GATES["cbam"][0] - (2 * 64 * 4 + 4 + 64) + (2 * 16 * 4 + 4 + 16) + 1,
    ),
    "blend_gca": (
        BlendedGate,
        {"layer": _serialized(GlobalContext(zero_init_last=False)), "alpha": 0.5},
        (5, 5, 16),
        2 * 16 * 2 + 3 * 2 + 2 * 16 + 1 + 1,
    ),
    # Coordinate attention: 3 C m + 3 m + 2 C, m = max(8, C // 32).
    "coord_c64": (CoordinateAttention, {}, (8, 8, 64), 3 * 64 * 8 + 3 * 8 + 2 * 64),
    "coord_nonsquare": (CoordinateAttention, {"hidden": 4}, (5, 9, 128), 3 * 128 * 4 + 12 + 256),
    "coord_c512": (CoordinateAttention, {}, (3, 4, 512), 3 * 512 * 16 + 3 * 16 + 2 * 512),
    "simam": (SimAM, {}, (8, 8, 16), 0),
    "simam_row": (SimAM, {"e_lambda": 0.5}, (1, 7, 3), 0),
    "linear_ae_w32": (LinearAutoencoderGate, {}, (4, 32, 8), GATES["linear_ae"][0]),
    "linear_ae_w13": (LinearAutoencoderGate, {}, (3, 13, 4), GATES["linear_ae"][3]),
    "linear_ae_small": (
        LinearAutoencoderGate,
        {"units": [6, 2], "activation": "tanh"},
        (3, 5, 2),
        5 * 6 + 6 + 6 * 2 + 2 + 2 * 6 + 6 + 6 * 5 + 5,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_layer(case):
    cls, kwargs, shape, params = CASES[case]
    # GC's pooling logits go through a softmax over positions: their bias has no gradient.
    gc = cls in (GlobalContext, GlobalContextGate) or "gca" in case
    constant = ("attend/bias",) if gc else ()
    run_layer_test(cls, kwargs, shape, params, constant_gradient=constant)


def test_the_linear_ae_counts_follow_its_rule():
    # docs/study.md: 257 W + 18,316 per gate, W the width at sites 1-4.
    assert GATES["linear_ae"] == [257 * w + 18_316 for w in (32, 30, 15, 13)]


def test_eca_kernel_rule():
    # t = floor((log2 C + 1) / 2), rounded up to odd: docs/study.md's k=3 at 64 and 5 at 128.
    assert [eca_kernel_size(c) for c in (16, 32, 64, 128, 256, 512)] == [3, 3, 3, 5, 5, 5]
    assert eca_kernel_size(128, gamma=1, b=0) == 7
    layer = ECA()
    layer.build((None, 4, 4, 128))
    assert layer.kernel_size_ == 5 and "kernel_size_" not in layer.get_config()


def test_eca_scales_channels_by_pooled_neighbours():
    layer = ECA(kernel_size=3)
    layer.build((None, 2, 2, 4))
    layer.conv.kernel.assign(np.ones((3, 1, 1), "float32"))
    x = np.zeros((1, 2, 2, 4), "float32")
    x[..., 0] = 1.0  # channel 0 has mean 1, the rest 0
    gate = keras.ops.convert_to_numpy(layer.gate(x))[0, 0, 0]
    sigmoid = 1 / (1 + np.exp(-1.0))
    # Channels 0 and 1 see the pooled 1 through the 3-wide kernel; 2 and 3 do not.
    np.testing.assert_allclose(gate, [sigmoid, sigmoid, 0.5, 0.5], rtol=1e-6)


def test_cbam_channel_gate_uses_avg_and_max():
    layer = CBAMChannelGate(reduction=2)
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 4)).astype("float32")
    layer.build(x.shape)
    avg, mx = x.mean(axis=(1, 2)), x.max(axis=(1, 2))
    w1, b1, w2, b2 = layer.get_weights()

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    expected = 1 / (1 + np.exp(-(mlp(avg) + mlp(mx))))
    gate = keras.ops.convert_to_numpy(layer.gate(x))[:, 0, 0, :]
    np.testing.assert_allclose(gate, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's pooling path")
def test_cbam_global_max_by_pooling_has_the_reductions_values_and_gradient():
    import tensorflow as tf

    from keras_attn.layers.cbam import _global_max

    x = tf.constant(np.random.default_rng(3).normal(size=(2, 5, 7, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        pooled, reduced = _global_max(x), tf.reduce_max(x, axis=(1, 2))
        w = tf.constant([[1.0, -2.0, 3.0]])
        loss_pooled, loss_reduced = tf.reduce_sum(pooled * w), tf.reduce_sum(reduced * w)
    np.testing.assert_array_equal(pooled.numpy(), reduced.numpy())
    np.testing.assert_allclose(tape.gradient(loss_pooled, x), tape.gradient(loss_reduced, x))


def test_linear_ae_acts_on_each_row_independently():
    layer = LinearAutoencoderGate(units=[4, 2])
    x = np.random.default_rng(2).normal(size=(1, 3, 6, 2)).astype("float32")
    mask = keras.ops.convert_to_numpy(layer.gate(x))
    # Changing one row of one channel changes that row's mask and nothing else.
    x2 = x.copy()
    x2[0, 1, :, 0] += 1.0
    mask2 = keras.ops.convert_to_numpy(layer.gate(x2))
    changed = ~np.isclose(mask, mask2)
    assert changed[0, 1, :, 0].any()
    changed[0, 1, :, 0] = False
    assert not changed.any()


@pytest.mark.parametrize("size", [2, 3, 5, 7, 13, 15, 16, 27, 28, 30, 32, 33, 64, 96, 100])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 7])
def test_final_geometry_hits_every_size(size, kernel):
    # Any height, any depth, any kernel: the decoder comes back to the exact input size.
    for depth in range(1, max_depth(size) + 1):
        decoded = (size >> depth) << (depth - 1)
        stride, before, after = final_geometry(decoded, size, kernel)
        produced = (decoded - 1) * stride + max(kernel, stride)
        assert before >= 0 and after >= 0
        assert produced - before - after == size


def test_final_geometry_matches_the_study_on_cifar_sites():
    # docs/study.md's (kernel, stride, padding, output_padding) per site. Stride and
    # leading crop (= padding) agree at sites 1, 2, 4; site 3 differs only in alignment.
    assert final_geometry(16, 32, 3)[:2] == (2, 1)
    assert final_geometry(12, 30, 3)[:2] == (3, 3)
    assert final_geometry(4, 15, 3)[0] == 4
    assert final_geometry(4, 13, 2)[:2] == (4, 1)


@pytest.mark.parametrize("shape", [(13, 13, 3), (7, 20, 2), (1, 1, 1)])
def test_conv_ae_odd_and_non_square_sizes(shape):
    depth = max_depth(min(shape[:2]))
    gate = ConvAutoencoderGate(filters=[2] * depth) if depth else None
    if gate is None:
        with pytest.raises(ValueError, match="at least 2 pixels"):
            ConvAutoencoderGate(filters=[2])(np.zeros((1, *shape), "float32"))
        return
    y = gate(np.ones((1, *shape), "float32"))
    assert tuple(y.shape) == (1, *shape)


def test_conv_ae_too_deep_names_the_size():
    with pytest.raises(ValueError, match=r"depth 4 .* input height is 13 .* at most 3 stages"):
        ConvAutoencoderGate(filters=[4, 4, 4, 4])(np.zeros((1, 13, 13, 2), "float32"))


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (ECA, {"kernel_size": 0}, "kernel_size"),
        (CBAMChannelGate, {"reduction": -1}, "reduction"),
        (CBAMSpatialGate, {"kernel_size": 2.5}, "kernel_size"),
        (ConvAutoencoderGate, {"filters": []}, "filters"),
        (ConvAutoencoderGate, {"filters": [8, 0]}, r"bad entry 0"),
        (ConvAutoencoderGate, {"final_kernel": 0}, "final_kernel"),
        (ConvAutoencoderGate, {"activation": "nope"}, "activation"),
        (LinearAutoencoderGate, {"units": [16, -2]}, r"bad entry -2"),
        (LinearAutoencoderGate, {"units": 12}, "units"),
        (SqueezeExcitation, {"reduction": 0}, "reduction"),
        (SqueezeExcitation, {"hidden": 2.5}, "hidden"),
        (GlobalContext, {"divisor": -1}, "divisor"),
        (GlobalContext, {"zero_init_last": "yes"}, "zero_init_last"),
        (CoordinateAttention, {"min_hidden": 0}, "min_hidden"),
        (SimAM, {"e_lambda": 0}, "e_lambda"),
        (GlobalContextGate, {"reduction": 0}, "reduction"),
        (ECAMLP, {"hidden": 0}, "hidden"),
        (GatherExcite, {"extent": 3}, r"even positive int, got 3"),
        (GatherExcite, {"use_mlp": 1}, "use_mlp"),
        (BlendedGate, {"layer": "eca"}, "keras.layers.Layer"),
        (BlendedGate, {"layer": ECA(), "alpha": "0"}, "`alpha` must be a number"),
    ],
)
def test_bad_arguments_raise_clear_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    "cls",
    [
        ECA,
        CBAM,
        ConvAutoencoderGate,
        LinearAutoencoderGate,
        SqueezeExcitation,
        GlobalContext,
        GlobalContextGate,
        CoordinateAttention,
        SimAM,
        EffectiveSqueezeExcitation,
        ECAMLP,
        CircularECA,
        GatherExcite,
    ],
)
def test_rank_other_than_4_is_refused(cls):
    with pytest.raises(ValueError, match=r"rank 4.*rank 3"):
        cls()(np.zeros((2, 8, 8), "float32"))


def test_get_builds_any_gate_by_name():
    assert isinstance(keras_attn.layers.get("eca"), ECA)
    layer = keras_attn.layers.get("conv_ae", filters=[4], name="g")
    assert isinstance(layer, ConvAutoencoderGate) and layer.name == "g"
    se = keras_attn.layers.get("se", reduction=4)
    assert isinstance(se, SqueezeExcitation) and se.reduction == 4
    with pytest.raises(ValueError, match=r"Unknown attention gate 'ecaa'. Did you mean 'eca'.*se"):
        keras_attn.layers.get("ecaa")


def test_register_adds_a_gate_that_models_can_use():
    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    keras_attn.layers.register("doubler_test", Doubler)
    try:
        assert "doubler_test" in keras_attn.layers.list_gates()
        assert isinstance(keras_attn.layers.get("doubler_test"), Doubler)
        model = keras_attn.build("cnn", blocks=[4], dense_units=4, attention=["doubler_test"])
        assert [layer.name for layer in model.layers if isinstance(layer, Doubler)] == [
            "site1_doubler_test",
            "site2_doubler_test",
        ]
    finally:
        keras_attn.layers.unregister("doubler_test")
    assert "doubler_test" not in keras_attn.layers.registry.GATES


@pytest.mark.parametrize(
    "name, cls, match",
    [
        ("eca", ECA, r"already registered as 'eca' \(ECA\)"),
        ("new_gate", ECA(), "the class, not an instance"),
        ("new_gate", dict, "keras.layers.Layer subclass"),
        ("", ECA, "non-empty string"),
        ("bad name", ECA, "letters, digits and underscores"),
    ],
)
def test_register_refuses_a_taken_name_or_a_non_layer(name, cls, match):
    with pytest.raises(ValueError, match=match):
        keras_attn.layers.register(name, cls)
    assert "new_gate" not in keras_attn.layers.registry.GATES


def test_built_in_gates_cannot_be_unregistered():
    with pytest.raises(ValueError, match="built-in"):
        keras_attn.layers.unregister("se")
    with pytest.raises(ValueError, match="Unknown attention gate"):
        keras_attn.layers.unregister("nope")


def test_conv_ae_same_padding_equals_the_study_padding_of_1():
    # On even sides the encoder uses "same"; it must see the windows of padding 1.
    gate = ConvAutoencoderGate(filters=[3])
    x = np.random.default_rng(3).normal(size=(2, 8, 6, 2)).astype("float32")
    gate.build(x.shape)
    conv = gate.get_layer("encode_0") if hasattr(gate, "get_layer") else gate.stages[0]
    assert conv.padding == "same"
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = keras.ops.relu(
        keras.ops.conv(padded, conv.kernel, strides=2, padding="valid") + conv.bias
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(conv(x)), keras.ops.convert_to_numpy(expected), atol=1e-5
    )
    # Odd sides keep the explicit padding, rounding down as PyTorch does.
    odd = ConvAutoencoderGate(filters=[3])
    odd.build((None, 7, 6, 2))
    assert odd.stages[0].name == "pad_0" and odd.stages[1].padding == "valid"


def _gate_with_keras_valid_output(gate, x):
    """The conv-AE mask as computed before the ONNX fix, from ``gate``'s own weights.

    The last transposed convolution gave Keras' default "valid" output,
    ``(n - 1) * s + max(k, s)`` positions (TensorFlow's output size past the kernel's
    reach, which ONNX converters wrote as negative pads), then the crop of `final_geometry`.
    """
    *decoder, final = gate.stages
    height, width = x.shape[1:3]
    y = x
    for stage in decoder:
        y = stage(y)
    decoded = [(s >> gate.depth) << (gate.depth - 1) for s in (height, width)]
    (sh, top, _), (sw, left, _) = (
        final_geometry(d, t, gate.final_kernel) for d, t in zip(decoded, (height, width))
    )
    y = keras.ops.conv_transpose(y, final.kernel, strides=(sh, sw), padding="valid") + final.bias
    return keras.ops.sigmoid(y[:, top : top + height, left : left + width])


@pytest.mark.parametrize(
    "shape, kwargs, params",
    [
        ((32, 32, 64), {}, 65_464),  # the four CIFAR sites
        ((30, 30, 64), {}, 65_464),
        ((15, 15, 128), {}, 84_728),
        ((13, 13, 128), {"final_kernel": 2}, 77_048),
        ((15, 15, 8), {"final_kernel": 2}, None),  # kernel < stride: one bias-only row
        ((9, 14, 3), {"filters": [4, 8], "final_kernel": 5}, None),
        ((7, 11, 4), {"filters": [4], "final_kernel": 1}, None),
        ((31, 17, 5), {"filters": [4, 4, 4], "final_kernel": 2}, None),
    ],
)
def test_conv_ae_equals_the_gate_with_keras_valid_output(shape, kwargs, params):
    # Same parameters and the same function as the gate whose graph onnxruntime refused.
    gate = ConvAutoencoderGate(**kwargs)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    gate.build(x.shape)
    mask = keras.ops.convert_to_numpy(gate.gate(x))
    if params is not None:
        assert gate.count_params() == params
    expected = keras.ops.convert_to_numpy(_gate_with_keras_valid_output(gate, x))
    assert mask.shape == expected.shape == (2, *shape)
    np.testing.assert_allclose(mask, expected, atol=1e-6, rtol=0)


def test_circular_eca_refuses_a_kernel_wider_than_its_wrap():
    with pytest.raises(ValueError, match=r"odd kernel_size of at most 2 C \+ 1 = 5.*got 7"):
        CircularECA(kernel_size=7)(np.zeros((1, 2, 2, 2), "float32"))


def test_every_gate_blended_from_zero_is_the_identity_and_alpha_gets_a_gradient():
    # Every registered gate, each blended, one after the other (one model, one step).
    kinds = keras_attn.layers.list_gates()
    blended = [
        BlendedGate(keras_attn.layers.get(k, **({"filters": [2]} if k == "conv_ae" else {})))
        for k in kinds
    ]
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 8)).astype("float32")
    model = keras.Sequential([keras.Input((6, 6, 8)), *blended, keras.layers.Flatten()])
    assert np.array_equal(keras.ops.convert_to_numpy(model(x)), x.reshape(2, -1))
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=True)), x.reshape(2, -1))
    for layer in blended:
        if hasattr(layer, "gate"):  # a mask gate: its effective mask is all ones at the start
            mask = keras.ops.convert_to_numpy(layer.gate(x))
            assert np.array_equal(mask, np.ones_like(mask)), layer.layer.name
    eager = keras.backend.backend() != "jax"  # one step: tracing it would cost more
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", run_eagerly=eager)
    targets = np.random.default_rng(5).normal(size=(2, 6 * 6 * 8)).astype("float32")
    model.fit(x, targets, epochs=1, batch_size=2, verbose=0)
    moved = {k: float(keras.ops.convert_to_numpy(b.alpha)) != 0.0 for k, b in zip(kinds, blended)}
    # All but gca: its last convolution starts at zero, so it adds nothing to move alpha by
    # (insert_attention(start="identity") leaves it unblended for that reason).
    assert moved == {k: k != "gca" for k in kinds}
