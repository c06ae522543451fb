"""The registry and the builder: every variant's parameter count, forward, backward,
save/load, input sizes, overrides and errors. Parametrized over `list_models()`,
so a newly registered variant gets these checks for free.

Backend-neutral: `test_backends.py` runs this file again under JAX.
"""

import json

import keras
import pytest
from model_checks import images, run_model_test
from study_tables import gate_params, variant_params

import keras_attn
from keras_attn.backbone import DEFAULT_CONFIG, site_sizes

# docs/study.md's tables: every variant's exact trainable count, and each gate's at each site.
EXACT_PARAMS = variant_params()
GATE_PARAMS = gate_params()
VARIANTS = list(keras_attn.list_models("cnn*"))  # the ResNets: test_resnet.py
BACKEND = keras.backend.backend()
# On JAX and PyTorch (test_backends.py), training and the other input sizes run on the
# variants that between them use every attention layer: JAX compiles its random
# initializers once per weight shape, which makes all nine builds slow on a 2-core CPU.
TRAINED = VARIANTS if BACKEND == "tensorflow" else ["cnn_conv_ae_eca", "cnn_cbam", "cnn_linear_ae"]


def test_every_registered_variant_has_its_exact_count():
    assert set(VARIANTS) == set(EXACT_PARAMS)


def test_registry_lists_the_nine_study_variants():
    models = keras_attn.list_models()
    assert set(VARIANTS) <= set(models)
    assert all(isinstance(d, str) and d and "\n" not in d for d in models.values())
    assert list(keras_attn.list_models("cnn_linear*")) == ["cnn_linear_ae", "cnn_linear_ae_eca"]


@pytest.mark.parametrize("name", VARIANTS)
def test_exact_trainable_params(name):
    model = keras_attn.build(name)
    assert keras_attn.count_trainable_params(model) == EXACT_PARAMS[name]


def test_study_code_cbam_slip_is_reproducible():
    # docs/study.md: the study's code kept CBAM at sites 1 and 3 only.
    model = keras_attn.build("cnn_cbam", sites=[1, 3])
    expected = EXACT_PARAMS["cnn"] + GATE_PARAMS["cbam"][0] + GATE_PARAMS["cbam"][2]
    assert keras_attn.count_trainable_params(model) == expected == 2_628_830


def test_the_variant_counts_are_the_baseline_plus_their_gates():
    """docs/study.md's two tables agree: a gated variant is ``cnn`` plus its gates per site."""
    study_conv_ae = keras_attn.get_config("cnn_conv_ae")["conv_ae"]
    checked = []
    for name in VARIANTS:
        config = keras_attn.get_config(name)
        kinds = config["attention"]
        changed = {k for k, v in config.items() if DEFAULT_CONFIG.get(k) != v}
        defaults = keras_attn.get_config("cnn", attention=kinds)  # each gate's own defaults
        defaults["conv_ae"] = study_conv_ae  # the table's conv-AE is the study's
        plain = changed <= {"name", "attention", *kinds}
        plain = plain and all(config[kind] == defaults[kind] for kind in kinds)
        if not plain or not kinds or set(kinds) - set(GATE_PARAMS):
            continue
        gates = sum(sum(GATE_PARAMS[kind]) for kind in config["attention"])
        assert EXACT_PARAMS[name] == EXACT_PARAMS["cnn"] + gates, name
        checked.append(name)
    assert len(checked) >= 8, checked  # the study's gated variants and the constant ablation


@pytest.mark.parametrize("name", TRAINED)
def test_forward_backward_and_save_load(name, tmp_path):
    run_model_test(name, tmp_path, expected_trainable_params=EXACT_PARAMS[name])


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3), (96, 96, 3)])
def test_every_variant_builds_for_other_input_sizes(shape):
    # Under JAX/PyTorch the conv autoencoder (the shape-dependent geometry) is enough.
    for name in VARIANTS if BACKEND == "tensorflow" else ["cnn_conv_ae_eca"]:
        model = keras_attn.build(name, input_shape=shape, num_classes=7)
        probs = keras.ops.convert_to_numpy(model(images(1, shape), training=False))
        assert probs.shape == (1, 7), name


def test_config_round_trips_through_json():
    config = keras_attn.get_config("cnn_conv_ae_eca", sites=[2, 4], conv_ae={"filters": [8, 16]})
    again = json.loads(json.dumps(config))
    assert keras_attn.get_config(again) == config
    a, b = keras_attn.build(config), keras_attn.build(again)
    assert a.count_params() == b.count_params()
    assert a.get_config()["config"] == config


def test_overrides_change_the_architecture():
    # Sites: gates only where asked.
    model = keras_attn.build("cnn_conv_ae", sites=[1, 4])
    assert [site for site, _ in model.attention_layers] == [1, 4]
    # Order of blocks at a site follows `attention`.
    model = keras_attn.build("cnn", attention=["conv_ae", "eca"], sites=[3])
    assert [layer.name for _, layer in model.attention_layers] == ["site3_conv_ae", "site3_eca"]
    # Autoencoder depth and widths; final kernel.
    model = keras_attn.build("cnn_conv_ae", sites=[1], conv_ae={"filters": [8, 16, 32, 64, 64]})
    gate = model.attention_layers[0][1]
    assert gate.depth == 5 and gate.final_kernel == 3
    # cnn3 has six sites.
    model = keras_attn.build("cnn3", attention=["eca"])
    assert [s for s, _ in model.attention_layers] == [1, 2, 3, 4, 5, 6]
    # The study's head: a ReLU on the logits.
    model = keras_attn.build("cnn", head="relu_softmax")
    assert model.get_layer("logits_relu") is not None


@pytest.mark.parametrize("position", ["pre_activation", "post_activation", "post_norm"])
def test_attention_position(position):
    model = keras_attn.build("cnn_eca", attention_position=position, sites=[1])
    gate = model.get_layer("site1_eca")
    feeds = gate.input._keras_history.operation.name
    assert (
        feeds
        == {
            "pre_activation": "block1_conv_a",
            "post_activation": "block1_relu_a",
            "post_norm": "block1_norm_a",
        }[position]
    )


def test_batchnorm_follows_pytorch_defaults_and_is_configurable():
    # The study's framework: PyTorch momentum 0.1 (Keras 0.9), epsilon 1e-5, also in CBAM.
    model = keras_attn.build("cnn_cbam", sites=[1])
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    norms.append(model.get_layer("site1_cbam").spatial.norm)
    assert len(norms) == 5
    assert all(n.momentum == 0.9 and n.epsilon == 1e-5 for n in norms)
    model = keras_attn.build("cnn", bn_momentum=0.99, bn_epsilon=1e-3)
    assert model.get_layer("block2_norm_b").momentum == 0.99
    with pytest.raises(ValueError, match="bn_momentum"):
        keras_attn.build("cnn", bn_momentum=1.0)


def test_feature_map_sizes_per_site():
    assert site_sizes(DEFAULT_CONFIG) == [(32, 32, 64), (30, 30, 64), (15, 15, 128), (13, 13, 128)]
    cnn3 = keras_attn.get_config("cnn3")
    assert [s[:2] for s in site_sizes(cnn3)] == [
        (32, 32),
        (30, 30),
        (15, 15),
        (13, 13),
        (6, 6),
        (4, 4),
    ]


def test_gates_are_made_once_per_site_and_never_to_check_a_config():
    made = []

    class Spy(keras_attn.layers.AttentionGate):
        def __init__(self, scale=0.5, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale
            made.append(self.name)

        def gate(self, inputs):
            return self.scale

    keras_attn.layers.register("spy", Spy)
    try:
        small = {"blocks": [4], "dense_units": 4, "input_shape": (8, 8, 3)}
        config = keras_attn.get_config("cnn", attention=["spy"], spy={"scale": 0.25}, **small)
        assert made == [] and config["spy"] == {"scale": 0.25}  # options from the signature
        keras_attn.build(config)
        assert made == ["site1_spy", "site2_spy"]
    finally:
        keras_attn.layers.unregister("spy")


def test_options_of_gates_not_in_use_are_checked_and_left_out():
    # A config holding every gate's options (as the records of the first runs do) is the same.
    config = keras_attn.get_config("cnn_eca")
    fuller = {**config, "cbam": {"reduction": 16}, "conv_ae": {"filters": [12, 24, 48]}}
    assert keras_attn.get_config(fuller) == config and "cbam" not in config
    with pytest.raises(ValueError, match=r"Unknown `cbam` option 'reductio'"):
        keras_attn.get_config({**fuller, "cbam": {"reductio": 16}})


def test_register_a_variant():
    keras_attn.register("cnn_eca_block1_test", {"attention": ["eca"], "sites": [1, 2]}, "test")
    try:
        model = keras_attn.build("cnn_eca_block1_test")
        assert keras_attn.count_trainable_params(model) == EXACT_PARAMS["cnn"] + 6
        with pytest.raises(ValueError, match="already registered"):
            keras_attn.register("cnn_eca_block1_test", {}, "again")
    finally:
        keras_attn.zoo.VARIANTS.pop("cnn_eca_block1_test")


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (
            ("cnn_conv_ae_ec",),
            {},
            r"Unknown model 'cnn_conv_ae_ec'. Did you mean 'cnn_conv_ae_eca'",
        ),
        (("resnet50",), {}, r"Unknown model 'resnet50'.*Available: cnn, cnn3"),
        (("cnn",), {"site": [1]}, r"Unknown config key 'site'. Did you mean 'sites'"),
        (("cnn_conv_ae",), {"conv_ae": {"filter": [4]}}, r"Unknown `conv_ae` option 'filter'"),
        (("cnn_eca",), {"sites": [0, 5]}, r"Site 0 is out of range.*sites 1 to 4"),
        (("cnn_eca",), {"sites": [5]}, r"Site 5 is out of range.*sites 1 to 4"),
        (("cnn_eca",), {"sites": [1, 1]}, "lists a site twice"),
        (
            ("cnn_conv_ae",),
            {"conv_ae": {"filters": [4, 4, 4, 4]}},
            r"too deep for site 3 \(15x15\), site 4 \(13x13\): depth 4 .* Use at most 3 stages",
        ),
        (("cnn_conv_ae",), {"conv_ae": {"filters": [12, 0]}}, r"`filters` .*bad entry 0"),
        (("cnn_linear_ae",), {"linear_ae": {"units": [128, -1]}}, r"`units` .*bad entry -1"),
        (
            ("cnn",),
            {"blocks": [64, 0]},
            r"`blocks` must be a non-empty list of positive integers, got \[64, 0\]",
        ),
        (("cnn",), {"dense_units": 0}, "`dense_units` must be a positive integer, got 0"),
        (("cnn",), {"input_shape": (32, 32)}, r"rank 3, got \[32, 32\]"),
        (("cnn",), {"input_shape": (32, 32, 3, 1)}, r"rank 3, got \[32, 32, 3, 1\]"),
        (("cnn",), {"input_shape": (8, 8, 3)}, r"too small for 2 conv blocks"),
        (
            ("cnn",),
            {"attention": ["eca", "sk"]},
            r"Unknown attention gate 'sk'.*Valid gates: .*simam",
        ),
        (("cnn",), {"head": "logits"}, r"`head` must be one of"),
        (("cnn_conv_ae",), {"conv_ae": {"final_kernel": [3, 3]}}, r"list of 2 .* 4 sites"),
        (("cnn",), {"dropout": 1.5}, r"`dropout` must be a number in \[0, 1\), got 1.5"),
    ],
)
def test_bad_input_gets_a_clear_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        keras_attn.build(*args, **kwargs)


def test_backend_is_what_the_environment_asked_for():
    # Guards test_backends.py: the subprocess runs really switch backend.
    import os

    assert BACKEND == os.environ.get("KERAS_BACKEND", BACKEND)
