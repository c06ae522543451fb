"""The CIFAR ResNets (He et al. 2016, option A): exact parameter counts from the architecture,
the gate's place in every residual block, configs and their errors, save and reload.

The counts are computed here from the paper's layer list and each gate's own formula, never
from the model, so a wrong layer, a bias too many or a misplaced gate changes them.
"""

import json
import math

import keras
import numpy as np
import pytest
from model_checks import images, run_model_test

import keras_attn
from keras_attn import resnet

RESNETS = list(keras_attn.list_models("resnet*"))
TINY = {"depth": 8, "widths": [4, 8, 8]}  # one block per stage: the structure, few weights


def _eca(c):
    # ECA-Net's adaptive kernel: t = |(log2 C + 1) / 2|, made odd; k weights, no bias.
    t = int(abs((math.log2(c) + 1) / 2))
    return t if t % 2 else t + 1


def _cbam(c, reduction=16):
    # Channel MLP C -> C/r -> C with biases; spatial 7x7 conv on 2 maps, no bias; its BN.
    h = max(c // reduction, 1)
    return (c * h + h) + (h * c + c) + 7 * 7 * 2 + 2


def _conv_ae(c, filters=(12, 24, 48), final_kernel=3):
    # Encoder 4x4 convs C -> 12 -> 24 -> 48, decoder 4x4 transposed 48 -> 24 -> 12, then a
    # final_kernel transposed conv 12 -> C; all with biases.
    widths = [c, *filters]
    encoder = sum(16 * a * b + b for a, b in zip(widths[:-1], widths[1:]))
    back = list(reversed(filters))
    decoder = sum(16 * a * b + b for a, b in zip(back[:-1], back[1:]))
    return encoder + decoder + final_kernel**2 * filters[0] * c + c


def _se(c, reduction=16, divisor=8):
    # Squeeze-and-excitation C -> h -> C with biases; h is timm's C / r rounded to a multiple
    # of 8 (halves up), at least 8.
    h = max(divisor, int(c / reduction + divisor / 2) // divisor * divisor)
    return (c * h + h) + (h * c + c)


GATE_PARAMS = {"se": _se, "eca": _eca, "cbam": _cbam, "conv_ae": _conv_ae}


def resnet_params(depth, gates=(), sites="all", widths=(16, 32, 64), classes=10, channels=3):
    """Trainable parameters of a CIFAR ResNet with option A (parameter-free) shortcuts."""
    n = (depth - 2) // (2 * len(widths))
    total = 9 * channels * widths[0] + 2 * widths[0]  # stem conv (no bias), BN gamma/beta
    c_in, block = widths[0], 0
    for width in widths:
        for _ in range(n):
            block += 1
            total += 9 * c_in * width + 2 * width + 9 * width * width + 2 * width
            if sites == "all" or block in sites:
                total += sum(GATE_PARAMS[g](width) for g in gates)
            c_in = width
    return total + (widths[-1] + 1) * classes  # dense with bias


def test_resnet20_has_the_papers_count():
    assert resnet_params(20) == 269_722  # He et al. 2016: "0.27M"
    assert keras_attn.count_trainable_params(keras_attn.build("resnet20")) == 269_722


@pytest.mark.parametrize("name", RESNETS)
def test_every_registered_resnet_has_its_exact_count(name):
    config = keras_attn.get_config(name)
    expected = resnet_params(config["depth"], config["attention"])
    model = keras_attn.build(name)
    assert keras_attn.count_trainable_params(model) == expected
    assert len(model.attention_layers) == (config["depth"] - 2) // 2 * bool(config["attention"])


def test_the_registry_has_the_resnets():
    assert {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"} <= set(RESNETS)
    gated = {"resnet20_se", "resnet20_eca", "resnet20_cbam", "resnet20_conv_ae", "resnet56_eca"}
    assert gated <= set(RESNETS)


def test_any_gate_at_any_blocks_by_config():
    model = keras_attn.build("resnet20", attention="cbam", sites=[7, 8, 9])
    assert [(s, layer.name) for s, layer in model.attention_layers] == [
        (7, "site7_cbam"),
        (8, "site8_cbam"),
        (9, "site9_cbam"),
    ]
    assert keras_attn.count_trainable_params(model) == resnet_params(20, ["cbam"], [7, 8, 9])
    gates, sites = ["eca", "conv_ae"], [1, 15]
    model = keras_attn.build("resnet32", attention=gates, sites=sites)
    assert keras_attn.count_trainable_params(model) == resnet_params(32, gates, sites)
    model = keras_attn.build("resnet20_cbam", cbam={"reduction": 4}, sites=[1])
    assert keras_attn.count_trainable_params(model) == resnet_params(20) + _cbam(16, 4)


def test_the_gate_sits_after_the_last_norm_before_the_add():
    model = keras_attn.build("resnet20_eca")
    for site, gate in model.attention_layers:
        assert gate.input._keras_history.operation.name == f"block{site}_bn_b"
        (add,) = [layer for layer in model.layers if layer.name == f"block{site}_add"]
        assert gate.output in add.input


def test_option_a_shortcuts_subsample_and_pad_without_parameters():
    model = keras_attn.build("resnet20")
    shortcuts = [layer for layer in model.layers if isinstance(layer, resnet.ZeroPadShortcut)]
    assert [layer.name for layer in shortcuts] == ["block4_shortcut", "block7_shortcut"]
    assert all(layer.count_params() == 0 for layer in shortcuts)
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = keras.ops.convert_to_numpy(resnet.ZeroPadShortcut(7)(x))
    assert y.shape == (2, 2, 2, 7)
    np.testing.assert_array_equal(y[..., 2:5], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 5:].any()
    sizes = [tuple(model.get_layer(f"block{b}_out").output.shape[1:]) for b in (1, 4, 7, 9)]
    assert sizes == [(32, 32, 16), (16, 16, 32), (8, 8, 64), (8, 8, 64)]
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_conv_ae_gate_builds_at_every_block_and_input_size():
    for shape in [(32, 32, 3), (40, 40, 3), (36, 44, 1)]:
        config = keras_attn.get_config("resnet20_conv_ae", input_shape=shape, **TINY)
        model = keras_attn.build(config)
        for site, gate in model.attention_layers:
            h, w, c = resnet.block_sizes(config)[site - 1]
            assert tuple(gate.output.shape[1:]) == (h, w, c)
    # 24x24 leaves 6x6 maps in the last stage: too small for three stride-2 stages.
    with pytest.raises(ValueError, match=r"too deep for block 3 \(6x6\).*at most 2 stages"):
        keras_attn.build("resnet20_conv_ae", input_shape=(24, 24, 3), **TINY)
    model = keras_attn.build(
        "resnet20_conv_ae", input_shape=(24, 24, 3), conv_ae={"filters": [8, 16]}, **TINY
    )
    assert len(model.attention_layers) == 3


def test_config_round_trips_and_errors_name_the_key():
    config = keras_attn.get_config("resnet56_eca", sites=[2, 27], eca={"kernel_size": 5})
    again = json.loads(json.dumps(config))
    assert keras_attn.get_config(again) == config and again["backbone"] == "resnet"
    assert keras_attn.build(again).get_config()["config"] == config
    cases = [
        ({"blocks": [8]}, "key of the study's CNN"),
        ({"dense_units": 8}, "key of the study's CNN"),
        ({"depth": 21}, r"6n \+ 2"),
        ({"sites": [10]}, "blocks 1 to 9"),
        ({"attention": "ecaa"}, "Did you mean 'eca'"),
        ({"widht": [8]}, "Did you mean 'widths'"),
        ({"cbam": {"reductoin": 2}}, "reductoin"),
        ({"backbone": "cnn"}, "Cannot override `backbone`"),
    ]
    for overrides, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            keras_attn.build("resnet20", **overrides)
    with pytest.raises(ValueError, match="`depth`: a key of the ResNet configs"):
        keras_attn.build("cnn", depth=20)
    with pytest.raises(ValueError, match="Unknown backbone 'resnet18'"):
        keras_attn.build({"backbone": "resnet18"})


def test_study_cnn_configs_gain_no_key():
    config = keras_attn.get_config("cnn_eca")
    assert "backbone" not in config and "depth" not in config
    assert keras_attn.get_config({**config, "backbone": "cnn"}) == config


@pytest.mark.parametrize("name", ["resnet20_cbam", "resnet20_conv_ae"])
def test_forward_backward_and_save_load(name, tmp_path):
    overrides = {**TINY, "input_shape": [16, 16, 3]}
    if name == "resnet20_conv_ae":
        overrides["conv_ae"] = {"filters": [4, 8]}
    run_model_test(name, tmp_path, overrides=overrides)
    loaded_type = type(keras.saving.load_model(tmp_path / f"{name}.keras"))
    assert loaded_type is resnet.AttentionResNet


def test_other_sizes_and_classes():
    model = keras_attn.build("resnet20_eca", input_shape=(40, 24, 1), num_classes=7, **TINY)
    probs = keras.ops.convert_to_numpy(model(images(2, (40, 24, 1)), training=False))
    assert probs.shape == (2, 7)
    assert tuple(model.get_layer("block3_out").output.shape[1:]) == (10, 6, 8)


@pytest.mark.parametrize("gate", list(keras_attn.layers.list_gates()))
def test_every_registered_gate_builds_in_every_block(gate):
    model = keras_attn.build("resnet20", attention=gate, **TINY)
    assert [(s, layer.name) for s, layer in model.attention_layers] == [
        (s, f"site{s}_{gate}") for s in (1, 2, 3)
    ]
    probs = keras.ops.convert_to_numpy(model(images(2), training=False))
    assert probs.shape == (2, 10) and np.isfinite(probs).all()
