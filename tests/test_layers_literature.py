"""The gates against their reference implementations: timm's modules, and the papers' equations.

timm's ``SEModule``, ``EffectiveSEModule``, ``EcaModule`` (plain and ``use_mlp``),
``CecaModule``, ``CbamModule``, ``GlobalContext`` (both fusions) and ``GatherExcite`` get
the Keras layer's weights (copied across, NHWC <-> NCHW) and must give the same outputs, within
1e-5, on random inputs. Where a gate departs from timm on purpose, the test says so and
checks the departure itself. Coordinate attention and SimAM are checked against NumPy
re-expressions of their papers' equations (and coordinate attention also against timm's
``CoordAttn`` set to the official code's choices).
"""

import sys

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.layers import (
    CBAM,
    ECA,
    ECAMLP,
    CircularECA,
    CoordinateAttention,
    EffectiveSqueezeExcitation,
    GatherExcite,
    GlobalContext,
    GlobalContextGate,
    SimAM,
    SqueezeExcitation,
    eca_kernel_size,
)

# timm imports torchvision, which imports torch._dynamo, which imports triton (GPU
# kernels, unused here); triton imported after TensorFlow crashes the process
# (segmentation fault). Without it torch runs on the CPU as usual.
if "tensorflow" in sys.modules:
    sys.modules.setdefault("triton", None)
torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from timm.layers.cbam import CbamModule  # noqa: E402
from timm.layers.coord_attn import CoordAttn  # noqa: E402
from timm.layers.create_attn import create_attn, get_attn  # noqa: E402
from timm.layers.eca import CecaModule, EcaModule  # noqa: E402
from timm.layers.gather_excite import GatherExcite as TimmGatherExcite  # noqa: E402
from timm.layers.global_context import GlobalContext as TimmGlobalContext  # noqa: E402
from timm.layers.helpers import make_divisible  # noqa: E402
from timm.layers.mlp import ConvMlp  # noqa: E402
from timm.layers.squeeze_excite import EffectiveSEModule, SEModule  # noqa: E402

TOLERANCE = 1e-5


def _random(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _timm(module, x, train=False):
    """``module`` on NHWC ``x`` (converted to NCHW and back), as a NumPy array."""
    module.train(train)
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    return out.numpy().transpose(0, 2, 3, 1)


def _keras(layer, x, training=False):
    return keras.ops.convert_to_numpy(layer(x, training=training))


def _randomise(layer, seed=1):
    """Give every weight of ``layer`` random values (variances positive)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(scale=0.5, size=w.shape)
        w.assign((np.abs(value) + 0.5 if "variance" in w.path else value).astype("float32"))


def _conv1x1(conv, kernel, bias=None):
    """Copy a Keras dense kernel ``(in, out)`` (and bias) into a torch 1x1 ``Conv2d``."""
    conv.weight.copy_(torch.from_numpy(np.asarray(kernel).T[:, :, None, None]))
    if bias is not None:
        conv.bias.copy_(torch.from_numpy(np.asarray(bias)))


def _dense_weights(dense):
    return [keras.ops.convert_to_numpy(w) for w in (dense.kernel, dense.bias)]


def _norm(bn, norm, moving=True):
    """Copy a Keras BatchNormalization (or LayerNormalization) into its torch counterpart."""
    values = [keras.ops.convert_to_numpy(w) for w in norm.weights]
    bn.weight.copy_(torch.from_numpy(values[0]))
    bn.bias.copy_(torch.from_numpy(values[1]))
    if moving:
        bn.running_mean.copy_(torch.from_numpy(values[2]))
        bn.running_var.copy_(torch.from_numpy(values[3]))


def _max_diff(a, b):
    diff = float(np.max(np.abs(a - b)))
    print(f"max |keras - reference| = {diff:.2e}")
    return diff


# ---------------------------------------------------------------- SE


@pytest.mark.parametrize("channels, kwargs", [(64, {}), (128, {}), (24, {}), (64, {"divisor": 1})])
def test_se_equals_timm_semodule(channels, kwargs):
    # Same defaults as timm: reduction 16, width rounded to a multiple of 8, biases.
    x = _random((3, 7, 5, channels))
    layer = SqueezeExcitation(**kwargs)
    layer.build(x.shape)
    _randomise(layer)
    reference = SEModule(channels, rd_divisor=kwargs.get("divisor", 8))
    assert reference.fc1.out_channels == layer.hidden_
    with torch.no_grad():
        _conv1x1(reference.fc1, *_dense_weights(layer.reduce))
        _conv1x1(reference.fc2, *_dense_weights(layer.expand))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


def test_se_width_follows_timm_and_divisor_one_is_the_paper():
    layer = SqueezeExcitation()
    layer.build((None, 4, 4, 64))
    assert layer.hidden_ == SEModule(64).fc1.out_channels == 8
    paper = SqueezeExcitation(divisor=1)
    paper.build((None, 4, 4, 64))
    assert paper.hidden_ == 64 // 16


# ---------------------------------------------------------------- ECA


def _timm_eca_like(layer, channels):
    reference = EcaModule(channels=channels)
    assert reference.conv.kernel_size[0] == layer.kernel_size_
    kernel = keras.ops.convert_to_numpy(layer.conv.kernel)  # (k, 1, 1)
    with torch.no_grad():
        reference.conv.weight.copy_(torch.from_numpy(kernel[:, 0, 0][None, None, :]))
    return reference


@pytest.mark.parametrize("channels", [8, 64, 128, 512])
def test_eca_equals_timm_ecamodule(channels):
    x = _random((3, 6, 5, channels))
    layer = ECA()
    layer.build(x.shape)
    _randomise(layer)
    assert _max_diff(_keras(layer, x), _timm(_timm_eca_like(layer, channels), x)) < TOLERANCE


def test_eca_departs_from_timm_below_eight_channels():
    # Departure: the paper's rule gives k = 1 for C < 8 (t = 1); timm rounds it up to 3.
    for channels in range(1, 600):
        timm_k = EcaModule(channels=channels).conv.kernel_size[0]
        ours = eca_kernel_size(channels)
        assert ours == timm_k if channels >= 8 else (ours, timm_k) == (1, 3), channels
    # With timm's kernel given, the layers agree again.
    x = _random((2, 4, 4, 4))
    layer = ECA(kernel_size=3)
    layer.build(x.shape)
    _randomise(layer)
    reference = EcaModule(channels=4)
    with torch.no_grad():
        kernel = keras.ops.convert_to_numpy(layer.conv.kernel)[:, 0, 0]
        reference.conv.weight.copy_(torch.from_numpy(kernel[None, None, :]))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


# ---------------------------------------------------------------- CBAM


def _timm_cbam_like(layer, channels, hidden):
    """timm's CbamModule with the study's MLP biases and width, and ``layer``'s weights."""
    reference = CbamModule(channels, rd_channels=hidden, mlp_bias=True)
    spatial = keras.ops.convert_to_numpy(layer.spatial.conv.kernel)  # (k, k, [max, mean], 1)
    with torch.no_grad():
        _conv1x1(reference.channel.fc1, *_dense_weights(layer.channel.hidden))
        _conv1x1(reference.channel.fc2, *_dense_weights(layer.channel.out))
        # timm stacks [mean, max], the official CBAM code (and this layer) [max, mean].
        weight = spatial[..., 0].transpose(2, 0, 1)[::-1][None]
        reference.spatial.conv.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        _norm(reference.spatial.conv.bn, layer.spatial.norm)
    return reference


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("channels, shape", [(64, (9, 9)), (128, (5, 7))])
def test_cbam_equals_timm_cbammodule_with_mlp_biases(channels, shape, train):
    # Departure: the study's (and the official code's) MLP has biases; timm's defaults to
    # none, so timm is set to mlp_bias=True. The spatial BatchNorm is timm's too
    # (ConvNormAct), in inference (moving statistics) and in training (batch statistics).
    x = _random((4, *shape, channels))
    layer = CBAM()
    layer.build(x.shape)
    _randomise(layer)
    hidden = layer.channel.hidden.units
    reference = _timm_cbam_like(layer, channels, hidden)
    assert reference.channel.fc1.out_channels == hidden == channels // 16
    assert _max_diff(_keras(layer, x, train), _timm(reference, x, train)) < TOLERANCE


def test_cbam_departures_from_timm_are_the_biases_and_the_width_rounding():
    # Biases: timm's default MLP has none, this layer has C // r + C of them.
    params = sum(p.numel() for p in CbamModule(64).parameters())
    layer = CBAM()
    layer.build((None, 4, 4, 64))
    trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
    assert trainable - params == 64 // 16 + 64
    # Width: this layer floors C / r (at least 1), timm rounds it to the nearest.
    layer = CBAM()
    layer.build((None, 4, 4, 24))
    assert layer.channel.hidden.units == 1 and CbamModule(24).channel.fc1.out_channels == 2
    # With timm given the width, they agree.
    x = _random((2, 4, 4, 24))
    _randomise(layer)
    assert _max_diff(_keras(layer, x), _timm(_timm_cbam_like(layer, 24, 1), x)) < TOLERANCE


# ---------------------------------------------------------------- GC


def _timm_gc_like(layer, channels, fuse="add"):
    """timm's GlobalContext with ``layer``'s weights, fused by adding (timm's gca) or scaling."""
    reference = TimmGlobalContext(
        channels, fuse_add=fuse == "add", fuse_scale=fuse == "scale", rd_channels=layer.hidden_
    )
    mlp = reference.mlp_add if fuse == "add" else reference.mlp_scale
    with torch.no_grad():
        _conv1x1(reference.conv_attn, *_dense_weights(layer.attend))
        _conv1x1(mlp.fc1, *_dense_weights(layer.reduce))
        _norm(mlp.norm, layer.norm, moving=False)
        _conv1x1(mlp.fc2, *_dense_weights(layer.expand))
    return reference


@pytest.mark.parametrize("channels, shape", [(64, (8, 8)), (128, (5, 7)), (20, (6, 3))])
def test_gca_equals_timm_gca_global_context_with_add_fusion(channels, shape):
    x = _random((3, *shape, channels))
    layer = GlobalContext()
    layer.build(x.shape)
    _randomise(layer)
    reference = _timm_gc_like(layer, channels)
    assert layer.hidden_ == reference.mlp_add.fc1.out_channels  # timm's width rule
    assert reference.mlp_add.norm.eps == layer.epsilon
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


@pytest.mark.parametrize("channels, shape", [(64, (8, 8)), (128, (5, 7)), (20, (6, 3))])
def test_gc_equals_timm_gc_global_context_with_scale_fusion(channels, shape):
    x = _random((3, *shape, channels))
    layer = GlobalContextGate()
    layer.build(x.shape)
    _randomise(layer)
    reference = _timm_gc_like(layer, channels, fuse="scale")
    assert layer.hidden_ == reference.mlp_scale.fc1.out_channels
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


def test_gc_and_gca_mean_what_they_mean_in_timm():
    # timm's create_attn: "gc" fuses by scale (its GlobalContext's default), "gca" by adding.
    gc, gca = create_attn("gc", 64), create_attn("gca", 64)
    assert gc.mlp_add is None and gc.mlp_scale is not None
    assert gca.mlp_add is not None and gca.mlp_scale is None
    assert keras_attn.layers.get("gc").__class__ is GlobalContextGate
    assert keras_attn.layers.get("gca").__class__ is GlobalContext
    # The two fusions of the same transform t: x * sigmoid(t) and x + t.
    x = _random((2, 6, 6, 64))
    added, scaled = GlobalContext(), GlobalContextGate()
    added.build(x.shape)
    scaled.build(x.shape)
    _randomise(added)
    scaled.set_weights(added.get_weights())
    t = keras.ops.convert_to_numpy(added.transform(x))
    assert _max_diff(_keras(scaled, x), x / (1 + np.exp(-t))) < TOLERANCE
    assert _max_diff(_keras(added, x), x + t) < TOLERANCE


def test_gc_starts_as_the_identity_and_pools_with_softmax_weights():
    x = _random((2, 5, 4, 16))
    layer = GlobalContext()
    np.testing.assert_array_equal(_keras(layer, x), x)  # last conv at zero, as the paper's code
    weights = keras.ops.convert_to_numpy(layer.context_weights(x))
    np.testing.assert_allclose(weights.sum(axis=(1, 2, 3)), 1.0, rtol=1e-6)


# ---------------------------------------------------------------- timm's ese, ecam, ceca, ge


@pytest.mark.parametrize("channels", [8, 64, 96])
def test_ese_equals_timm_effective_se(channels):
    x = _random((3, 5, 6, channels)) * 3  # logits beyond +-3, where the hard sigmoid is flat
    layer = EffectiveSqueezeExcitation()
    layer.build(x.shape)
    _randomise(layer)
    reference = create_attn("ese", channels)
    assert isinstance(reference, EffectiveSEModule)
    with torch.no_grad():
        _conv1x1(reference.fc, *_dense_weights(layer.fc))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


@pytest.mark.parametrize("channels", [8, 64, 72, 128])
def test_ecam_equals_timm_eca_with_mlp(channels):
    x = _random((3, 6, 5, channels))
    layer = ECAMLP()
    layer.build(x.shape)
    _randomise(layer)
    reference = create_attn("ecam", channels)
    assert reference.conv.out_channels == layer.hidden_  # timm's width rule (round_limit 0.9)
    assert reference.conv2.kernel_size[0] == layer.kernel_size_
    expand_kernel, expand_bias = _dense_weights(layer.expand)  # (1, m), (m,)
    conv_kernel = keras.ops.convert_to_numpy(layer.conv.kernel)  # (k, m, 1)
    with torch.no_grad():
        reference.conv.weight.copy_(torch.from_numpy(expand_kernel.T[:, :, None]))
        reference.conv.bias.copy_(torch.from_numpy(expand_bias))
        reference.conv2.weight.copy_(torch.from_numpy(conv_kernel.transpose(2, 1, 0).copy()))
        reference.conv2.bias.copy_(torch.from_numpy(keras.ops.convert_to_numpy(layer.conv.bias)))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


@pytest.mark.parametrize("channels", [8, 64, 128, 512])
def test_ceca_equals_timm_circular_eca(channels):
    x = _random((3, 4, 5, channels))
    layer = CircularECA()
    layer.build(x.shape)
    _randomise(layer)
    reference = create_attn("ceca", channels)
    assert isinstance(reference, CecaModule) and reference.conv.kernel_size[0] == layer.kernel_size_
    kernel = keras.ops.convert_to_numpy(layer.conv.kernel)  # (k, 1, 1)
    with torch.no_grad():
        reference.conv.weight.copy_(torch.from_numpy(kernel[:, 0, 0][None, None, :].copy()))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE
    # The wrap matters: the same kernel with zero padding (ECA) differs at the ends.
    eca = ECA()
    eca.build(x.shape)
    eca.set_weights(layer.get_weights())
    assert np.abs(_keras(eca, x) - _keras(layer, x)).max() > 1e-4


def _timm_ge_like(layer, channels, extent, use_mlp=True):
    """timm's GatherExcite with ``layer``'s weights.

    timm 1.0.31 cannot build it with its MLP (``ConvMlp(..., *dd)`` passes the keys of
    its device/dtype dict as positional arguments: a TypeError), so the reference is
    built without and given the ConvMlp its constructor means to make.
    """
    reference = TimmGatherExcite(channels, extent=extent, use_mlp=False)
    if use_mlp:
        hidden = make_divisible(channels / 16, 1, round_limit=0.0)  # timm's rd_channels
        assert hidden == layer.hidden_
        reference.mlp = ConvMlp(channels, hidden, act_layer=torch.nn.ReLU)
        with torch.no_grad():
            _conv1x1(reference.mlp.fc1, *_dense_weights(layer.reduce))
            _conv1x1(reference.mlp.fc2, *_dense_weights(layer.expand))
    return reference


@pytest.mark.parametrize(
    "extent, shape, use_mlp",
    [
        (0, (6, 6), True),
        (2, (8, 8), True),
        (2, (7, 5), True),
        (4, (9, 13), True),
        (8, (5, 6), False),
    ],
)
def test_ge_equals_timm_gather_excite(extent, shape, use_mlp):
    # timm's create_attn("ge") is extent 0 with the MLP; its extents gather by average pooling.
    channels = 32
    x = _random((2, *shape, channels))
    layer = GatherExcite(extent=extent, use_mlp=use_mlp)
    layer.build(x.shape)
    _randomise(layer)
    reference = _timm_ge_like(layer, channels, extent, use_mlp)
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE
    if extent == 0:  # timm's create_attn("ge") is this block (see _timm_ge_like)
        assert get_attn("ge") is TimmGatherExcite


# ---------------------------------------------------------------- coordinate attention


def _hswish(v):
    return v * np.clip(v + 3, 0, 6) / 6


def _coord_numpy(x, layer, training=False):
    """Hou et al. 2021, eqs. 4-9: pool along each axis, shared transform, two sigmoids."""
    w1, b1 = _dense_weights(layer.reduce)
    gamma, beta, mean, var = [keras.ops.convert_to_numpy(w) for w in layer.norm.weights]
    wh, bh = _dense_weights(layer.height_conv)
    ww, bw = _dense_weights(layer.width_conv)
    height = x.shape[1]
    z_h = x.mean(axis=2)  # eq. 4: (B, H, C)
    z_w = x.mean(axis=1)  # eq. 5: (B, W, C)
    f = np.concatenate([z_h, z_w], axis=1) @ w1 + b1  # eq. 6, F1 on [z_h, z_w]
    if training:
        mean, var = f.mean(axis=(0, 1)), f.var(axis=(0, 1))
    f = _hswish((f - mean) / np.sqrt(var + layer.epsilon) * gamma + beta)
    g_h = 1 / (1 + np.exp(-(f[:, :height] @ wh + bh)))  # eq. 7
    g_w = 1 / (1 + np.exp(-(f[:, height:] @ ww + bw)))  # eq. 8
    return x * g_h[:, :, None, :] * g_w[:, None, :, :]  # eq. 9


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("channels, shape", [(64, (8, 8)), (96, (5, 9)), (512, (3, 4))])
def test_coord_equals_the_papers_equations(channels, shape, training):
    x = _random((3, *shape, channels))
    layer = CoordinateAttention()
    layer.build(x.shape)
    _randomise(layer)
    assert layer.hidden_ == max(8, channels // 32)  # the official code's width
    expected = _coord_numpy(x.astype("float64"), layer, training)
    assert _max_diff(_keras(layer, x, training), expected) < TOLERANCE


def test_coord_equals_timm_coordattn_set_to_the_official_code():
    # timm's CoordAttn departs from the official code (its width rule, no biases); set to
    # the official choices (width given, biases), it is this layer.
    x = _random((3, 6, 5, 64))
    layer = CoordinateAttention()
    layer.build(x.shape)
    _randomise(layer)
    reference = CoordAttn(64, rd_channels=layer.hidden_, bias=True)
    with torch.no_grad():
        _conv1x1(reference.conv1, *_dense_weights(layer.reduce))
        _norm(reference.bn1, layer.norm)
        _conv1x1(reference.conv_h, *_dense_weights(layer.height_conv))
        _conv1x1(reference.conv_w, *_dense_weights(layer.width_conv))
    assert _max_diff(_keras(layer, x), _timm(reference, x)) < TOLERANCE


# ---------------------------------------------------------------- SimAM


def _simam_numpy(x, e_lambda):
    """Yang et al. 2021, eq. 5 and the weighting of eq. 6, per channel over H x W."""
    n = x.shape[1] * x.shape[2] - 1
    mu = x.mean(axis=(1, 2), keepdims=True)
    sigma2 = ((x - mu) ** 2).sum(axis=(1, 2), keepdims=True) / n
    e_min = 4 * (sigma2 + e_lambda) / ((x - mu) ** 2 + 2 * sigma2 + 2 * e_lambda)  # eq. 5
    return x / (1 + np.exp(-1 / e_min))  # eq. 6: X * sigmoid(1 / E)


@pytest.mark.parametrize("e_lambda", [1e-4, 0.1])
@pytest.mark.parametrize("shape", [(8, 8, 16), (5, 9, 3), (1, 2, 4)])
def test_simam_equals_the_papers_equations(shape, e_lambda):
    x = _random((3, *shape)) * 3 + 1
    expected = _simam_numpy(x.astype("float64"), e_lambda)
    assert _max_diff(_keras(SimAM(e_lambda), x), expected) < TOLERANCE


def test_simam_refuses_a_single_position():
    with pytest.raises(ValueError, match=r"at least two positions.*1x1"):
        SimAM()(np.zeros((1, 1, 1, 4), "float32"))


# ---------------------------------------------------------------- the CNN by config


def test_the_new_gates_build_in_the_cnn_by_config_and_leave_the_variants_unchanged():
    before = keras_attn.get_config("cnn_eca")
    for gate in ("se", "gc", "gca", "ese", "ecam", "ceca", "ge", "coord", "simam"):
        model = keras_attn.build("cnn", blocks=[8, 16], dense_units=8, attention=[gate])
        assert [layer.name for _, layer in model.attention_layers] == [
            f"site{s}_{gate}" for s in (1, 2, 3, 4)
        ]
        assert gate not in keras_attn.get_config("cnn")  # options of the gates in use only
    model = keras_attn.build("cnn", blocks=[8], attention=["se"], se={"reduction": 2})
    assert model.get_layer("site1_se").reduction == 2
    assert keras_attn.get_config("cnn_eca") == before
    # The schema's keys, and the options of the gate in use: no other gate's.
    assert set(before) == {*keras_attn.backbone.DEFAULT_CONFIG, "eca"}
    with pytest.raises(ValueError, match=r"Unknown `se` option 'reductio'.*'reduction'"):
        keras_attn.build("cnn", attention=["se"], se={"reductio": 2})


def _se(c):
    h = max(8, int(c / 16 + 4) // 8 * 8)
    return 2 * c * h + h + c


def _gc(c):
    m = max(1, int(c / 8 + 0.5))
    return 2 * c * m + 3 * m + 2 * c + 1


def _coord(c):
    m = max(8, c // 32)
    return 3 * c * m + 3 * m + 2 * c


@pytest.mark.parametrize(
    "gate, per_site", [("se", _se), ("gc", _gc), ("coord", _coord), ("simam", lambda c: 0)]
)
def test_a_gate_at_every_site_adds_its_formula_at_each_sites_width(gate, per_site):
    # Sites see 8, 8, 24, 24 channels; docs/models.md gives the formulas.
    blocks = {"blocks": [8, 24], "dense_units": 8}
    plain = keras_attn.count_trainable_params(keras_attn.build("cnn", **blocks))
    model = keras_attn.build("cnn", attention=[gate], **blocks)
    added = keras_attn.count_trainable_params(model) - plain
    assert added == sum(per_site(c) for c in (8, 8, 24, 24))


@pytest.mark.slow
def test_the_new_gates_export_to_every_format(tmp_path):
    from keras_attn import export
    from keras_attn.export.formats import FORMATS

    missing = [f for f in FORMATS if export.install_hint(f)]
    if keras.backend.backend() != "tensorflow" or missing:
        pytest.skip("exporting every format needs the TF backend and the export packages")
    keras.utils.set_random_seed(0)
    model = keras_attn.build(
        "cnn",
        blocks=[8, 16],
        dense_units=16,
        attention=["se", "gc", "coord", "simam"],
    )
    card = export.export_model(model, tmp_path / "gates", class_names=None)
    diffs = card["verified_max_abs_diff"]
    print(diffs, card["converters"])
    assert set(diffs) == set(FORMATS) and all(d <= 1e-5 for d in diffs.values()), diffs
    reloaded = keras_attn.load(tmp_path / "gates", format="keras")
    images = np.random.default_rng(5).integers(0, 256, size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(images)),
        keras.ops.convert_to_numpy(model(images)),
        atol=1e-6,
    )
