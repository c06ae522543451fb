"""Grad-CAM and the gate pictures on the new models: the CIFAR ResNets' gates (one per
residual block) and gates put into a Keras application by `keras_attn.insert_attention`.
Small models (one block per stage, few channels), untrained: what is tested is that every
gate is found at its site, with its kind, and that the heatmap and the picture are made.
"""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn
from keras_attn.attention_maps import (
    attention_layers,
    attention_maps,
    gate_parts,
    grad_cam,
    gradcam_layer,
    mask_statistics,
    plot_attention_maps,
)

RESNET_GATES = [n for n in keras_attn.list_models("resnet20_*")]
TINY = {"depth": 8, "widths": [4, 8, 8]}


def image(seed=0, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def mobilenet_eca():
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=3
    )
    after = [layer.name for layer in base.layers if layer.name.endswith("_project_BN")]
    return keras_attn.insert_attention(base, "eca", after=after), after


@pytest.mark.parametrize("name", RESNET_GATES)
def test_resnet_gates_are_found_at_their_blocks_and_drawn(name, tmp_path):
    model = keras_attn.build(name, **TINY)
    kind = keras_attn.get_config(name)["attention"][0]
    assert [(s, k) for s, k, _ in attention_layers(model)] == [(s, kind) for s in (1, 2, 3)]
    heat = grad_cam(model, image())
    assert gradcam_layer(model) == "block3_out"
    assert heat.shape == (32, 32) and np.isfinite(heat).all() and 0 <= heat.min() <= 1
    maps = attention_maps(model, image())
    assert [m["site"] for m in maps] == [1, 2, 3]
    assert [m["mask_shape"][-1] for m in maps] in ([4, 8, 8], [1, 1, 1])
    assert all(0 <= m["mask"].min() <= m["mask"].max() <= 1 for m in maps)
    parts = gate_parts(model, image())
    assert {p["site"] for p in parts} == {1, 2, 3}
    result = plot_attention_maps(model, image(), tmp_path / f"{name}.png", dpi=20)
    assert result["cols"] == 3 and result["layer"] == "block3_out"
    with Image.open(result["path"]) as png:
        png.verify()


def test_inserted_gates_are_found_in_order_with_their_kind(mobilenet_eca, tmp_path):
    model, after = mobilenet_eca
    found = attention_layers(model)
    assert [(s, k, layer.name) for s, k, layer in found] == [
        (i, "eca", f"{name}_eca") for i, name in enumerate(after, start=1)
    ]
    heat = grad_cam(model, image(1))
    assert heat.shape == (32, 32) and np.isfinite(heat).all()
    stats = mask_statistics(model, np.stack([image(2), image(3)]))
    assert [row["site"] for row in stats] == list(range(1, len(after) + 1))
    result = plot_attention_maps(model, image(1), tmp_path / "mobilenet.png", dpi=20)
    assert result["cols"] == len(after)
    with Image.open(result["path"]) as png:
        png.verify()
