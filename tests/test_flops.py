"""MAC counting (keras_attn.flops), checked against figures computed by hand from the shapes."""

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.flops import count_macs, layer_macs, mac_breakdown, mac_summary
from keras_attn.layers import ECA, CBAMChannelGate, ConvAutoencoderGate, LinearAutoencoderGate

# The study's backbone, layer by layer: output positions x kernel x fan-in x filters.
BACKBONE = {
    "block1_conv_a": 32 * 32 * 3 * 3 * 3 * 64,
    "block1_conv_b": 30 * 30 * 3 * 3 * 64 * 64,
    "block2_conv_a": 15 * 15 * 3 * 3 * 64 * 128,
    "block2_conv_b": 13 * 13 * 3 * 3 * 128 * 128,
    "dense": 6 * 6 * 128 * 512,
    "logits": 512 * 10,
}


def _wrap(layer, shape):
    """A functional model holding one layer (flops counts models)."""
    x = keras.Input(shape)
    return keras.Model(x, layer(x))


def _conv_ae_macs(h, w, c, final_kernel, filters=(12, 24, 48)):
    """The conv-AE gate by hand: encoder convs at output positions, decoder at input ones."""
    total, size, fan_in = 0, (h, w), c
    sizes = []
    for f in filters:  # 4x4 stride-2 conv, padding 1: floor((n + 2 - 4) / 2) + 1 = floor(n / 2)
        size = (size[0] // 2, size[1] // 2)
        total += size[0] * size[1] * 16 * fan_in * f
        sizes.append(size)
        fan_in = f
    for f in reversed(filters[:-1]):  # 4x4 stride-2 transposed conv ("same"): input positions
        total += size[0] * size[1] * 16 * fan_in * f
        size = (2 * size[0], 2 * size[1])
        fan_in = f
    total += size[0] * size[1] * final_kernel**2 * fan_in * c  # final transposed conv
    return total


def test_backbone_macs_match_hand_count():
    rows = {r["path"]: r["macs"] for r in mac_breakdown(keras_attn.build("cnn"))["layers"]}
    assert rows == BACKBONE
    assert count_macs(keras_attn.build("cnn")) == sum(BACKBONE.values()) == 78_820_352


def test_conv_autoencoder_gate_macs():
    # Site 1 of the study: 32x32x64, final kernel 3 (encoder 16, 8, 4; decoder 8, 16).
    expected = (
        16 * 16 * 16 * 64 * 12
        + 8 * 8 * 16 * 12 * 24
        + 4 * 4 * 16 * 24 * 48
        + 4 * 4 * 16 * 48 * 24
        + 8 * 8 * 16 * 24 * 12
        + 16 * 16 * 9 * 12 * 64
    )
    assert expected == _conv_ae_macs(32, 32, 64, 3) == 6_094_848
    assert count_macs(_wrap(ConvAutoencoderGate(final_kernel=3), (32, 32, 64))) == expected
    # Site 4: 13x13x128, final kernel 2.
    gate = _wrap(ConvAutoencoderGate(final_kernel=2), (13, 13, 128))
    assert count_macs(gate) == _conv_ae_macs(13, 13, 128, 2)


def test_linear_autoencoder_gate_macs():
    # rows = H * C per image, each W -> 128 -> 64 -> 12 -> 64 -> 128 -> W.
    h, w, c = 13, 13, 128
    per_row = w * 128 + 128 * 64 + 64 * 12 + 12 * 64 + 64 * 128 + 128 * w
    assert count_macs(_wrap(LinearAutoencoderGate(), (h, w, c))) == h * c * per_row == 35_356_672


def test_eca_and_cbam_channel_gate_macs():
    assert count_macs(_wrap(ECA(), (8, 8, 64))) == 64 * 3  # Conv1D over channels, k = 3
    # The shared MLP runs twice (average- and max-pooled vectors): 2 * (64*4 + 4*64).
    assert count_macs(_wrap(CBAMChannelGate(), (8, 8, 64))) == 2 * (64 * 4 + 4 * 64)


def test_layer_macs_conventions():
    conv = keras.layers.Conv2DTranspose(5, 3, strides=2)
    conv.build((None, 4, 4, 2))
    # Transposed convolutions count input positions x the whole kernel.
    assert layer_macs(conv, (1, 4, 4, 2), (1, 9, 9, 5)) == 4 * 4 * 3 * 3 * 5 * 2
    dense = keras.layers.Dense(7)
    dense.build((None, 3, 5, 11))
    assert layer_macs(dense, (1, 3, 5, 11), (1, 3, 5, 7)) == 3 * 5 * 11 * 7
    assert layer_macs(keras.layers.ReLU(), (1, 4), (1, 4)) is None


def test_summary_splits_attention_from_backbone():
    base = count_macs(keras_attn.build("cnn"))
    conv = mac_summary(keras_attn.build("cnn_conv_ae"), baseline=base)
    assert conv["backbone_macs"] == base
    expected_gates = sum(
        _conv_ae_macs(h, w, c, k)
        for (h, w, c), k in zip(
            [(32, 32, 64), (30, 30, 64), (15, 15, 128), (13, 13, 128)], [3, 3, 3, 2]
        )
    )
    assert conv["attention_macs"] == expected_gates
    # The description: conv-AE gates about a sixth of the backbone, linear-AE about twice.
    assert 0.15 < conv["attention_macs"] / base < 0.19
    linear = mac_summary(keras_attn.build("cnn_linear_ae"), baseline=base)
    assert 2.0 < linear["attention_macs"] / base < 2.5
    assert linear["ratio"] == pytest.approx(linear["macs"] / base)
    for name in ("cnn_eca", "cnn_cbam"):
        assert mac_summary(keras_attn.build(name), baseline=base)["ratio"] < 1.01


def test_breakdown_reports_skipped_weighted_layers():
    result = mac_breakdown(keras_attn.build("cnn_cbam"))
    assert result["skipped"] == ["BatchNormalization"]
    paths = [r["path"] for r in result["layers"]]
    assert paths.count("site1_cbam/channel/hidden") == 2  # shared MLP, two calls


def test_nested_models_are_counted():
    first, second = keras_attn.build("cnn"), keras_attn.build("cnn")
    second.name = "cnn_again"  # a functional model needs distinct layer names
    x = keras.Input((32, 32, 3))
    nested = keras.Model(x, [first(x), second(x)])
    assert count_macs(nested) == 2 * sum(BACKBONE.values())


def test_errors():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, keras.layers.Conv2D(2, 3)(x))
    with pytest.raises(ValueError, match="unknown non-batch dimension"):
        count_macs(model)
    with pytest.raises(ValueError, match="baseline"):
        mac_summary(keras_attn.build("cnn_eca"), baseline=0)


def test_counting_leaves_layers_unpatched():
    before = keras.layers.Layer.__call__
    count_macs(keras_attn.build("cnn_eca"))
    assert keras.layers.Layer.__call__ is before
    out = keras_attn.build("cnn")(np.zeros((1, 32, 32, 3), "float32"))
    assert out.shape == (1, 10)
