"""Attention maps: every variant with attention gives one mask per block and site, in
[0, 1], at the image size, and its gates as what they are (channel weights, spatial masks,
a constant), equal to the layers' own gates; the picture (Grad-CAM and gates) is a PNG of
the expected size for every variant, `cnn` included; `attention_maps` of `cnn` gets a clear
error; a reloaded .keras model gives the same maps; the script writes the PNG.
"""

import inspect
import pathlib

import keras
import numpy as np
import pytest
from PIL import Image

import keras_attn
from keras_attn import export
from keras_attn.attention_maps import (
    attention_maps,
    format_mask_statistics,
    gate_parts,
    mask_statistics,
    plot_attention_maps,
)
from keras_attn.attention_maps.figure import figure_inches

REPO = pathlib.Path(__file__).resolve().parents[1]
WITH_ATTENTION = [
    name for name in keras_attn.list_models("cnn*") if keras_attn.get_config(name)["attention"]
]
STUDY_WITH_ATTENTION = [
    "cnn_eca",
    "cnn_cbam",
    "cnn_conv_ae",
    "cnn_conv_ae_eca",
    "cnn_linear_ae",
    "cnn_linear_ae_eca",
    "cnn_cbam_spatial_eca",
]
# Blocks whose mask is the same at every position (one value per channel, or one in all).
CHANNEL_ONLY = {"eca", "cbam_channel", "constant"}


def small_model(name, **overrides):
    depth = len(keras_attn.get_config(name)["blocks"])
    blocks = [min(8 * 2**i, 16) for i in range(depth)]  # same depth, few filters
    return keras_attn.build(name, **{"blocks": blocks, "dense_units": 16, **overrides})


def image(shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_the_study_variants_with_attention_are_all_covered():
    assert set(STUDY_WITH_ATTENTION) <= set(WITH_ATTENTION)


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_one_mask_per_block_and_site_in_0_1_at_image_size(name):
    model = small_model(name)
    config = model.model_config
    maps = attention_maps(model, image())
    sites = keras_attn.AttentionCNN.attention_sites(config)
    expected = [(site, kind) for site in sites for kind in config["attention"]]
    assert [(m["site"], m["kind"]) for m in maps] == expected
    for m in maps:
        assert m["name"] == f"site{m['site']}_{m['kind']}"
        assert m["mask"].shape == (32, 32) and m["mask"].dtype == np.float32
        assert 0.0 <= m["mask"].min() <= m["mask"].max() <= 1.0
        assert m["channel_only"] == (m["kind"] in CHANNEL_ONLY)
        if m["channel_only"]:  # one weight per channel: the channel mean is flat
            assert m["mask_shape"][:2] == (1, 1) and np.ptp(m["mask"]) < 1e-6


def test_masks_are_the_layers_gates_on_their_inputs():
    """Site 1's input is the first convolution's output: check the mask against it."""
    model = small_model("cnn_conv_ae")
    img = image()
    conv = keras.Model(model.inputs[0], model.get_layer("block1_conv_a").output)
    x = conv(img[None].astype("float32"))
    gate = keras.ops.convert_to_numpy(model.get_layer("site1_conv_ae").gate(x))[0]
    np.testing.assert_allclose(attention_maps(model, img)[0]["mask"], gate.mean(-1), atol=1e-6)


def test_grayscale_model_and_sites_subset():
    model = small_model("cnn_cbam", input_shape=(28, 28, 1), sites=[2, 3])
    maps = attention_maps(model, image((28, 28, 1)))
    assert [m["site"] for m in maps] == [2, 3]
    assert all(m["mask"].shape == (28, 28) for m in maps)


@pytest.mark.parametrize("name", ["cnn", "cnn3"])
def test_a_model_without_attention_gets_a_clear_message_and_a_grad_cam_picture(name, tmp_path):
    model = small_model(name)
    with pytest.raises(ValueError, match=rf"model '{name}' has no attention blocks;.*cnn_eca"):
        attention_maps(model, image())
    with pytest.raises(ValueError, match="has no attention blocks"):
        gate_parts(model, image())
    result = plot_attention_maps(model, image(), tmp_path / "maps.png", dpi=40)
    assert (result["rows"], result["cols"]) == (1, 3)  # input, Grad-CAM, Grad-CAM over it
    assert result["maps"] == [] and result["parts"] == []
    assert result["heatmap"].shape == (32, 32)
    with Image.open(tmp_path / "maps.png") as png:
        assert png.format == "PNG"
        assert png.size == tuple(round(v * 40) for v in figure_inches(1, 3))


def test_bad_inputs_are_refused(tmp_path):
    model = small_model("cnn_eca")
    with pytest.raises(ValueError, match=r"image has shape \(16, 16, 3\).*takes \(32, 32, 3\)"):
        attention_maps(model, image((16, 16, 3)))
    with pytest.raises(ValueError, match="need the Keras model.*SavedModel"):
        attention_maps(object(), image())
    with pytest.raises(ValueError, match="`scale` must be one of"):
        plot_attention_maps(model, image(), tmp_path / "m.png", scale="log")


@pytest.mark.parametrize("scale", ["panel", "fixed"])
def test_png_grid_has_the_expected_size(tmp_path, scale):
    model = small_model("cnn_cbam_spatial_eca")
    result = plot_attention_maps(model, image(), tmp_path / "sub" / "maps.png", scale=scale, dpi=50)
    # Grad-CAM row, then a row of ECA weights and one of spatial masks; one column per site.
    assert (result["rows"], result["cols"]) == (3, 4)
    width, height = figure_inches(3, 4)
    with Image.open(result["path"]) as png:
        assert png.format == "PNG"
        assert png.size == (round(width * 50), round(height * 50))
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.std() > 10  # something was drawn


def test_a_reloaded_keras_model_gives_the_same_maps(tmp_path):
    model = small_model("cnn_conv_ae_eca")
    model.save(tmp_path / "m.keras")
    reloaded = keras_attn.load(tmp_path / "m.keras")
    img = image()
    for a, b in zip(attention_maps(model, img), attention_maps(reloaded, img), strict=True):
        assert a["name"] == b["name"]
        np.testing.assert_allclose(a["mask"], b["mask"], atol=1e-6)


def _script(monkeypatch):
    """``keras-attn attention-maps``'s module (its ``main(argv)``)."""
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    from keras_attn.cli import attention_maps as command

    return command


def test_script_writes_the_png_and_explains_cnn(tmp_path, monkeypatch, capsys):
    script = _script(monkeypatch)
    names = [f"class_{i}" for i in range(10)]
    for name in ("cnn_conv_ae", "cnn"):
        export.export_model(
            small_model(name), tmp_path / name, class_names=names, formats="keras", verify=False
        )
    cat = tmp_path / "cat.png"
    Image.fromarray(image((48, 40, 3))).save(cat)
    out = tmp_path / "maps.png"
    assert script.main([str(tmp_path / "cnn_conv_ae"), str(cat), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "center-cropped and resized to 32x32" in captured.err
    assert f"wrote {out}: 4 attention masks at 4 site(s)" in captured.out
    assert "spatial std" not in captured.out  # only with --stats
    assert "predicted class_" in captured.out
    with Image.open(out) as png:  # the Grad-CAM row and the conv-AE masks at 4 sites
        assert png.size == tuple(round(v * 100) for v in figure_inches(2, 4))

    args = [str(tmp_path / "cnn_conv_ae"), str(cat), "--out", str(out), "--stats"]
    assert script.main(args) == 0
    table = capsys.readouterr().out.splitlines()[1:]
    assert "spatial std" in table[0] and [line.split()[:2] for line in table[1:]] == [
        [str(site), "conv_ae"] for site in (1, 2, 3, 4)
    ]

    # cnn has no attention: its picture is the Grad-CAM row; --stats says there is none.
    args = [str(tmp_path / "cnn"), str(cat), "--out", str(tmp_path / "x.png"), "--stats"]
    assert script.main(args) == 0
    captured = capsys.readouterr()
    assert f"wrote {tmp_path / 'x.png'}: no attention blocks, Grad-CAM of class_" in captured.out
    assert "at block2_norm_b" in captured.out
    assert "model 'cnn' has no attention blocks: no mask statistics" in captured.err
    with Image.open(tmp_path / "x.png") as png:
        assert png.size == tuple(round(v * 100) for v in figure_inches(1, 3))

    # --class by name or index, --layer for Grad-CAM; bad ones name what is valid.
    args = [str(tmp_path / "cnn_conv_ae"), str(cat), "--out", str(out), "--class", "class_7"]
    assert script.main([*args, "--layer", "block1_norm_b"]) == 0
    assert "Grad-CAM of class_7 at block1_norm_b" in capsys.readouterr().out
    assert script.main([*args[:-1], "3"]) == 0
    assert "Grad-CAM of class_3 at block2_norm_b" in capsys.readouterr().out
    assert script.main([*args[:-1], "class_77"]) == 2
    assert "Unknown class 'class_77'. Did you mean 'class_7'" in capsys.readouterr().err
    assert script.main([*args, "--layer", "dense"]) == 2
    assert "whose output is a feature map" in capsys.readouterr().err
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    assert script.main([str(tmp_path / "cnn_conv_ae"), str(bad)]) == 2
    assert "Cannot decode" in capsys.readouterr().err


# What each block's gate is: (part, gate shape at site 1 of a 32x32 input with 8 channels).
PARTS_OF = {
    "eca": [("channel", (1, 1, 8))],
    "cbam": [("channel", (1, 1, 8)), ("spatial", (32, 32, 1))],
    "cbam_channel": [("channel", (1, 1, 8))],
    "cbam_spatial": [("spatial", (32, 32, 1))],
    "conv_ae": [("spatial", (32, 32, 8))],
    "linear_ae": [("spatial", (32, 32, 8))],
    "constant": [("constant", (1, 1, 1))],
    "se": [("channel", (1, 1, 8))],
    "gc": [("channel", (1, 1, 8))],
    "gca": [("context", (32, 32, 1)), ("addend", (1, 1, 8))],
    "coord": [("spatial", (32, 32, 8))],
    "simam": [("spatial", (32, 32, 8))],
}


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_gates_come_as_what_they_are(name):
    model = small_model(name)
    config = model.model_config
    parts = gate_parts(model, image())
    expected = [
        (site, kind, part)
        for site in keras_attn.AttentionCNN.attention_sites(config)
        for kind in config["attention"]
        for part, _ in PARTS_OF[kind]
    ]
    assert [(p["site"], p["kind"], p["part"]) for p in parts] == expected
    first = [(p["part"], p["shape"]) for p in parts if p["site"] == 1]
    assert first == [shape for kind in config["attention"] for shape in PARTS_OF[kind]]
    for p in parts:
        values = np.asarray(p["values"])
        assert np.isfinite(values).all()
        if p["part"] == "addend":  # what GC adds: any sign, one value per channel
            assert values.shape == (p["shape"][-1],)
            continue
        assert 0.0 <= values.min() <= values.max() <= 1.0
        if p["part"] == "context":  # GC's pooling weights: a softmax over positions
            assert values.shape == p["shape"][:2]
            np.testing.assert_allclose(values.sum(), 1.0, rtol=1e-5)
        elif p["part"] == "channel":
            assert values.shape == (p["shape"][-1],)  # (an untrained CBAM's may all be 0.5)
        elif p["part"] == "spatial":
            assert values.shape == p["shape"][:2] and np.ptp(values) > 0
        else:
            assert p["values"] == 0.5  # the constant gate's value


def test_gate_parts_are_the_layers_gates():
    """CBAM's two parts multiply to its gate; ECA's weights and the AE's mask are their gates."""
    img = image(seed=2)
    for name in ("cnn_cbam", "cnn_conv_ae_eca"):
        model = small_model(name)
        layers = [layer for layer in model.layers if hasattr(layer, "gate")]
        probe = keras.Model(model.inputs[0], [layer.input for layer in layers])
        gates = [
            keras.ops.convert_to_numpy(
                layer.gate(x, training=False)
                if "training" in inspect.signature(layer.gate).parameters
                else layer.gate(x)
            )[0]
            for layer, x in zip(layers, probe(img[None].astype("float32"), training=False))
        ]
        parts = gate_parts(model, img)
        if name == "cnn_cbam":
            assert len(parts) == 2 * len(gates)
            for gate, channel, spatial in zip(gates, parts[::2], parts[1::2]):
                product = spatial["values"][:, :, None] * channel["values"][None, None, :]
                np.testing.assert_allclose(product, gate, rtol=1e-5, atol=1e-7)
        else:
            assert len(parts) == len(gates)
            for gate, part in zip(gates, parts):
                want = gate.reshape(-1) if part["part"] == "channel" else gate.mean(-1)
                np.testing.assert_allclose(part["values"], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(keras_attn.list_models("cnn*")))
def test_the_picture_is_written_for_every_variant(name, tmp_path):
    model = small_model(name)
    result = plot_attention_maps(model, image(), tmp_path / f"{name}.png", dpi=30)
    config = model.model_config
    kinds = config["attention"]
    part_rows = sum(len(PARTS_OF[kind]) for kind in kinds)
    sites = len(keras_attn.AttentionCNN.attention_sites(config))
    assert (result["rows"], result["cols"]) == (1 + part_rows, max(3, sites))
    assert result["class_index"] == int(np.argmax(model(image()[None].astype("float32"))[0]))
    assert result["layer"] == f"block{len(config['blocks'])}_norm_b"
    with Image.open(result["path"]) as png:
        png.verify()  # a complete, valid PNG
    with Image.open(result["path"]) as png:
        assert png.format == "PNG"
        assert png.size == tuple(
            round(v * 30)
            for v in figure_inches(result["rows"], result["cols"], result["text_rows"])
        )


def _brute_force_statistics(model, images):
    """The same figures computed directly: each gate on all images in one pass, no running sums."""
    out = []
    for layer in [layer for layer in model.layers if hasattr(layer, "gate")]:
        probe = keras.Model(model.inputs[0], layer.input)
        x = probe(images.astype("float32"), training=False)
        takes_training = "training" in inspect.signature(layer.gate).parameters
        gate = keras.ops.convert_to_numpy(
            layer.gate(x, training=False) if takes_training else layer.gate(x)
        )
        full = np.broadcast_to(gate, tuple(x.shape)).astype("float64")
        out.append(
            {
                "mean": full.mean(),
                "std": full.std(),
                "min": full.min(),
                "max": full.max(),
                "spatial_std": full.mean(-1).std(axis=(1, 2)).mean(),
                "channel_std": full.mean(axis=(1, 2)).std(-1).mean(),
            }
        )
    return out


@pytest.mark.parametrize("name", ["cnn_eca", "cnn_conv_ae", "cnn_cbam_spatial_eca"])
def test_mask_statistics_match_numpy_over_all_images_in_any_batching(name):
    keras.utils.set_random_seed(0)
    model = small_model(name)
    images = np.stack([image(seed=i) for i in range(5)])
    rows = mask_statistics(model, images, batch_size=2)  # batches of 2, 2 and 1
    assert [r["images"] for r in rows] == [5] * len(rows)
    expected = _brute_force_statistics(model, images)
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        for key, value in want.items():
            np.testing.assert_allclose(row[key], value, rtol=1e-4, atol=1e-7, err_msg=key)
    kinds = [r["kind"] for r in rows]
    for row in rows:
        if row["kind"] == "eca":  # channel-only: no spread over positions, some over channels
            assert row["spatial_std"] == 0.0 and row["channel_std"] > 0
        else:
            assert row["spatial_std"] > 0
    assert len(format_mask_statistics(rows).splitlines()) == 1 + len(kinds)


def test_mask_statistics_refuse_bad_input():
    model = small_model("cnn_eca")
    with pytest.raises(ValueError, match=r"non-empty batch \(N, 32, 32, 3\)"):
        mask_statistics(model, np.zeros((32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="non-empty batch"):
        mask_statistics(model, np.zeros((0, 32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="`batch_size` must be a positive int"):
        mask_statistics(model, np.zeros((1, 32, 32, 3), "uint8"), batch_size=0)
    with pytest.raises(ValueError, match="has no attention blocks"):
        mask_statistics(small_model("cnn"), np.zeros((1, 32, 32, 3), "uint8"))


LITERATURE_GATES = ["se", "gc", "gca", "coord", "simam"]


def literature_model(gate):
    keras.utils.set_random_seed(0)
    model = keras_attn.build("cnn", blocks=[8, 16], dense_units=16, attention=[gate])
    if gate == "gca":  # from zero the block adds nothing: give it something to add
        for layer in model.layers:
            if layer.name.endswith("_gca"):
                layer.expand.kernel.assign(np.full(layer.expand.kernel.shape, 0.1, "float32"))
    return model


@pytest.mark.parametrize("gate", LITERATURE_GATES)
def test_the_literature_gates_are_drawn_as_what_they_are(gate, tmp_path):
    model = literature_model(gate)
    img = image()
    parts = gate_parts(model, img)
    assert [(p["site"], p["part"], p["shape"]) for p in parts if p["site"] == 1] == [
        (1, part, shape) for part, shape in PARTS_OF[gate]
    ]
    assert {p["site"] for p in parts} == {1, 2, 3, 4}
    maps = attention_maps(model, img)
    assert [m["kind"] for m in maps] == [gate] * 4
    for m in maps:
        assert m["mask"].shape == (32, 32) and 0.0 <= m["mask"].min() <= m["mask"].max() <= 1.0
        assert m["channel_only"] == (gate in ("se", "gc"))
    rows = mask_statistics(model, np.stack([image(seed=i) for i in range(3)]))
    assert [r["kind"] for r in rows] == [gate] * 4
    result = plot_attention_maps(model, img, tmp_path / f"{gate}.png", dpi=30)
    assert result["rows"] == 1 + len(PARTS_OF[gate]) and result["heatmap"].shape == (32, 32)
    with Image.open(result["path"]) as png:
        png.verify()


def test_gca_is_drawn_by_its_pooling_weights_and_what_it_adds():
    model = literature_model("gca")
    img = image(seed=4)
    layer = model.get_layer("site3_gca")
    x = keras.Model(model.inputs[0], layer.input)(img[None].astype("float32"), training=False)
    weights = keras.ops.convert_to_numpy(layer.context_weights(x))[0, :, :, 0]
    added = keras.ops.convert_to_numpy(layer.transform(x))[0, 0, 0]
    # The block is x + what it adds; the parts are where it pools from and what it adds.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x))[0], x[0] + added, atol=1e-5)
    parts = [p for p in gate_parts(model, img) if p["site"] == 3]
    np.testing.assert_allclose(parts[0]["values"], weights, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(parts[1]["values"], added, rtol=1e-5, atol=1e-7)
    mask = [m for m in attention_maps(model, img) if m["site"] == 3][0]
    assert mask["mask"].max() == pytest.approx(1.0, abs=0.05)  # relative to the most pooled
    row = [r for r in mask_statistics(model, img[None]) if r["site"] == 3][0]
    assert row["mean"] == pytest.approx(1.0)  # pooling weights x positions: 1 is an average
    assert row["std"] == pytest.approx(float(weights.std() * weights.size), rel=1e-4)
