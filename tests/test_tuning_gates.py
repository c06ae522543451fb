"""The gate search (``space["gates"]``, ``--gates``) and the backbones (``--backbone``).

- the gate type is a choice; the conv-AE's hyperparameters are active only under
  it, ECA-before-the-gate not under the ECA gate; every point is a distinct valid
  config and the count is exact;
- every registered gate builds and runs on a tiny CNN and a tiny ResNet, whose
  sites are residual blocks grouped by stage;
- a two-trial search with the gate search finishes and reports its gates, on
  each backbone;
- the default search is unchanged (no ``gate`` hyperparameter, no ``gates`` in
  the record); a folder resumes only with the same gate choices;
- bad gates and backbones get clear errors, from Python and from the script.
"""

import json

import keras
import keras_tuner
import numpy as np
import pytest
from tuning_helpers import enumerate_space, random_data, tune_script

import keras_attn
from keras_attn import tuning
from keras_attn.tuning import backbones

# A tiny CNN (sites: 16x16, 14x14) and a space that keeps the conv-AE's share small.
GATE_BASE = {"blocks": [4], "dense_units": 8, "input_shape": [16, 16, 3]}
# A tiny ResNet: three residual blocks (16x16, 8x8, 4x4), one per stage.
RESNET_BASE = {"backbone": "resnet", "name": "tiny_resnet", "depth": 8, "widths": [4, 4, 8],
               "input_shape": [16, 16, 3]}  # fmt: skip
GATE_SPACE = {
    "sites": {"first": [1], "both": [1, 2]},
    "max_depth": 2,
    "first_filters": [2],
    "growth": [1.0, 2.0],
    "final_kernel": [2],
    "attention_position": ["pre_activation", "post_norm"],
    "learning_rate": [0.05],
}


def _hm(gates):
    return tuning.ConvAutoencoderHyperModel(GATE_BASE, space={**GATE_SPACE, "gates": gates})


def _resnet_hm(gates, **space):
    space = {"max_depth": 2, "first_filters": [2], "growth": [1.0], "final_kernel": [2], **space}
    return tuning.ConvAutoencoderHyperModel(RESNET_BASE, space={**space, "gates": gates})


def _conditions(hp):
    return [(c.name, list(c.values)) for c in hp.conditions]


def test_the_gate_is_a_choice_and_the_conv_ae_hyperparameters_depend_on_it():
    hm = _hm(["eca", "cbam", "conv_ae", "se"])
    space = hm.hyperparameters().space
    gate = space[0]
    assert gate.name == "gate" and list(gate.values) == ["eca", "cbam", "conv_ae", "se"]
    assert gate.default == "conv_ae"  # the study's gate
    by_name = {}
    for p in space:
        by_name.setdefault(p.name, []).append(_conditions(p))
    # Two placements: the conv-AE's (parent of its depths) and the other gates'.
    assert by_name["sites_conv_ae"] == [[("gate", ["conv_ae"])]]
    assert by_name["sites"] == [[("gate", ["eca", "cbam", "se"])]]
    assert by_name["depth_both"] == [[("gate", ["conv_ae"]), ("sites_conv_ae", ["both"])]]
    assert by_name["growth_first"] == [
        [("gate", ["conv_ae"]), ("sites_conv_ae", ["first"]), ("depth_first", [2])]
    ]
    for key in ("first_filters", "final_kernel", "activation"):
        assert by_name[key] == [[("gate", ["conv_ae"])]]
    assert by_name["eca"] == [[("gate", ["cbam", "conv_ae", "se"])]]  # no ECA before ECA
    assert by_name["attention_position"] == by_name["learning_rate"] == [[]]

    v = hm.values({"gate": "se", "sites": "first"})
    assert (v["gate"], v["sites"], v["depth"], v["first_filters"]) == ("se", "first", None, None)
    config = hm.model_config({"gate": "se", "sites": "first", "eca": True})
    assert config["attention"] == ["eca", "se"] and config["sites"] == [1]
    assert "conv_ae" not in config  # a config holds the options of the gates it uses only
    config = hm.model_config({"gate": "conv_ae", "sites_conv_ae": "both", "depth_both": 2})
    assert config["attention"] == ["conv_ae"] and config["conv_ae"]["filters"] == [2, 4]
    assert hm.model_config({"gate": "eca"})["attention"] == ["eca"]
    assert hm.name == "gate_search"


@pytest.mark.parametrize(
    "gates", [["eca", "cbam", "conv_ae", "se"], ["cbam", "se"], ["conv_ae"], "all"]
)
def test_every_point_of_a_gate_space_is_a_valid_distinct_config(gates):
    hm = _hm(gates)
    seen = set()
    for values in enumerate_space(hm.hyperparameters().space, skip=("learning_rate",)):
        config = hm.model_config(values)  # validates it (keras_attn.get_config)
        key = json.dumps(config, sort_keys=True)
        assert key not in seen, f"two points give one config: {values}"
        seen.add(key)
    assert len(seen) == hm.size()[0]
    chosen = {json.loads(k)["attention"][-1] for k in seen}
    assert chosen == set(hm.space["gates"])
    assert bool(hm.depths) == ("conv_ae" in hm.space["gates"])
    if gates == "all":
        assert hm.space["gates"] == backbones.gate_names()


def test_the_default_search_has_no_gate_hyperparameter():
    hm = tuning.ConvAutoencoderHyperModel()
    assert hm.space["gates"] is None and hm.name == "conv_ae_search"
    names = [p.name for p in hm.hyperparameters().space]
    assert "gate" not in names and names.count("sites") == 1
    assert hm.values({})["gate"] == "conv_ae"
    record = tuning.search_record(hm, "random", epochs=1, batch_size=8)
    assert "gates" not in record["hypermodel"]["space"]
    gated = tuning.search_record(_hm(["se", "eca"]), "random", epochs=1, batch_size=8)
    assert gated["hypermodel"]["space"]["gates"] == ["eca", "se"]  # registry order


@pytest.mark.parametrize("backbone", ["cnn", "resnet"])
@pytest.mark.parametrize("gate", backbones.gate_names())
def test_every_registered_gate_builds_and_runs_on_a_tiny_backbone(gate, backbone):
    hm = _hm("all") if backbone == "cnn" else _resnet_hm("all")
    placement = "both" if backbone == "cnn" else "all"
    keras.backend.clear_session()
    sites = "sites_conv_ae" if gate == "conv_ae" else "sites"
    model = hm.build({"gate": gate, sites: placement, "attention_position": "post_norm"})
    config = model.model_config if backbone == "cnn" else model.get_config()["config"]
    assert config["attention"] == [gate]  # ECA before the gate: off by default
    assert config["sites"] == ([1, 2] if backbone == "cnn" else [1, 2, 3])
    gate_class = type(keras_attn.layers.get(gate))
    layers = [la for la in model._flatten_layers() if type(la) is gate_class]
    assert len(layers) == len(config["sites"])
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)).astype("float32")
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 10) and np.all(np.isfinite(probs))


def test_a_resnets_sites_are_its_residual_blocks_by_stage():
    hm = tuning.ConvAutoencoderHyperModel("resnet20", space={"gates": ["se", "conv_ae"]})
    assert hm.space["sites"] == {
        "stage1": [1, 2, 3], "stage2": [4, 5, 6], "stage3": [7, 8, 9], "all": list(range(1, 10))
    }  # fmt: skip
    # 32x32, 16x16 and 8x8 blocks: the conv-AE goes as deep as the smallest allows.
    assert hm.depths == {"stage1": [1, 2, 3, 4, 5], "stage2": [1, 2, 3, 4],
                         "stage3": [1, 2, 3], "all": [1, 2, 3]}  # fmt: skip
    assert hm.space["attention_position"] is None  # one place per block: nothing to choose
    names = [p.name for p in hm.hyperparameters().space]
    assert "attention_position" not in names and names[0] == "gate"
    config = hm.model_config({"gate": "se", "sites": "stage3"})
    assert (config["backbone"], config["attention"], config["sites"]) == (
        "resnet",
        ["se"],
        [7, 8, 9],
    )
    config = hm.model_config({"gate": "conv_ae", "sites_conv_ae": "stage1", "depth_stage1": 5})
    assert config["conv_ae"]["filters"] == [12, 24, 48, 96, 192]
    with pytest.raises(ValueError, match="no position to choose"):
        tuning.ConvAutoencoderHyperModel("resnet20", space={"attention_position": ["post_norm"]})
    with pytest.raises(ValueError, match="sites from 1 to 9 .*its 9 residual blocks"):
        tuning.ConvAutoencoderHyperModel("resnet20", space={"sites": {"deep": [10]}})


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["cnn", "resnet"])
def test_a_two_trial_gate_search_finishes_and_reports_its_gates(tmp_path, backbone):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 12)
    # Few conditional scopes: KerasTuner builds a model for each before the first trial.
    small = {"sites": {"all": [1, 2] if backbone == "cnn" else [1, 2, 3]}, "max_depth": 1}
    base = GATE_BASE if backbone == "cnn" else RESNET_BASE
    space = {k: v for k, v in GATE_SPACE.items() if backbone == "cnn" or k != "attention_position"}

    def make(gates):
        return tuning.ConvAutoencoderHyperModel(base, space={**space, **small, "gates": gates})

    hm = make(["cbam", "conv_ae", "se"])
    kw = {"directory": tmp_path, "project_name": "g", "epochs": 1, "batch_size": 4}
    tuner = tuning.search(
        hm, x[:8], y[:8], x[8:], y[8:], tuner="random", max_trials=2, verbose=0, log=None, **kw
    )
    trials = tuning.read_trials(tuner.project_dir)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    report = tuning.write_results(tuner.project_dir, hm, k=2)
    gates = [row["gate"] for row in report["rows"]]
    assert set(gates) <= {"cbam", "conv_ae", "se"}
    for row in report["rows"]:
        assert row["config"]["attention"][-1] == row["gate"]
        assert (row["filters"] is None) == (row["gate"] != "conv_ae")
    assert "| gate |" in report["table"]
    best = json.loads(open(report["best_config"]).read())
    assert best["attention"][-1] == gates[0]
    if backbone == "resnet":  # compared with its backbone: an unregistered one by its config
        base = tuner.project_dir + "/base_config.json"
        assert f"--models {report['best_config']},{base} " in report["command"]
        assert report["baseline"] == base
        assert json.loads(open(base).read()) == hm.base_config
        return
    # The same search resumes; other gate choices are another search.
    tuning.make_tuner(make(["cbam", "conv_ae", "se"]), "random", max_trials=2, **kw)
    with pytest.raises(ValueError, match=r"hypermodel.space.gates: folder has \["):
        tuning.make_tuner(make(["cbam", "se"]), "random", max_trials=2, **kw)


def test_a_folder_resumes_only_with_the_same_gate_choices(tmp_path):
    kw = {"directory": tmp_path, "max_trials": 2, "epochs": 1}
    plain = tuning.ConvAutoencoderHyperModel(GATE_BASE, space=GATE_SPACE)
    tuning.make_tuner(plain, "random", project_name="plain", **kw)
    tuning.make_tuner(plain, "random", project_name="plain", **kw)  # resumes
    with pytest.raises(
        ValueError,
        match=r"(?s)different search.*hypermodel.space.gates: folder has null, this search has "
        r'\["eca", "conv_ae"\]',
    ):
        tuning.make_tuner(_hm(["eca", "conv_ae"]), "random", project_name="plain", **kw)
    tuning.make_tuner(_hm(["eca", "conv_ae"]), "random", project_name="gated", **kw)
    with pytest.raises(ValueError, match=r'folder has \["eca", "conv_ae"\], this search has null'):
        tuning.make_tuner(plain, "random", project_name="gated", **kw)


def test_bad_gates_and_backbones_get_clear_errors():
    with pytest.raises(ValueError, match=r"unknown gate 'sse'. Did you mean 'se'.*Valid gates"):
        _hm(["eca", "sse"])
    with pytest.raises(ValueError, match="lists a gate twice"):
        _hm(["eca", "eca"])
    with pytest.raises(ValueError, match=r"must be None, \"all\" or a non-empty list"):
        _hm("eca")
    with pytest.raises(ValueError, match="must be None"):
        _hm([])
    with pytest.raises(ValueError, match=r"--gates: unknown gate 'cbamm'. Did you mean 'cbam'"):
        tuning.parse_gates("eca,cbamm")
    with pytest.raises(ValueError, match="--gates: expected"):
        tuning.parse_gates(" , ")
    with pytest.raises(ValueError, match="--gates lists a gate twice"):
        tuning.parse_gates("se,se")
    with pytest.raises(ValueError, match=r"Unknown backbone 'cnn4'. Did you mean.*Valid backbones: "
                       r"cnn, cnn3"):  # fmt: skip
        tuning.model_settings(backbone="cnn4")
    with pytest.raises(ValueError, match="Unknown backbone 'cnn_eca'"):  # has a gate already
        tuning.model_settings(backbone="cnn_eca")
    with pytest.raises(ValueError, match="name two networks"):
        tuning.model_settings(backbone="cnn3", base="cnn_eca")
    with pytest.raises(ValueError, match="disagree"):
        tuning.model_settings(gates="eca,se", space={"gates": ["eca"]})
    settings = tuning.model_settings(backbone="cnn3", gates="all", space={"eca": [False]})
    assert settings == {"base": "cnn3", "space": {"eca": [False], "gates": "all"}}
    for depth in (20, 32, 44, 56, 110):  # every registered ResNet depth
        assert tuning.model_settings(backbone=f"resnet{depth}")["base"] == f"resnet{depth}"
    with pytest.raises(ValueError, match=r"Unknown backbone 'resnet21'. Did you mean .*'resnet20'"):
        tuning.model_settings(backbone="resnet21")


def test_the_script_refuses_bad_gates_and_backbones_before_loading_data(capsys):
    tune = tune_script()
    assert tune.main(["--gates", "eca,sse", "--data-dir", "nowhere"]) == 2
    assert "--gates: unknown gate 'sse'. Did you mean 'se'" in capsys.readouterr().err
    assert tune.main(["--backbone", "resnet21", "--data-dir", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "Unknown backbone 'resnet21'" in err and "Valid backbones: cnn, cnn3" in err


def test_the_script_passes_backbone_and_gates_to_the_hypermodel(tmp_path, monkeypatch, capsys):
    from keras_attn import runtime

    tune = tune_script()
    x, y, xv, yv = random_data(n_train=16, n_val=8)
    np.savez(tmp_path / "tiny.npz", x_train=x, y_train=y, x_test=xv, y_test=yv)
    captured = {}

    def fake_search(hypermodel, *arrays, **settings):
        captured.update(hypermodel=hypermodel)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(runtime, "configure_runtime", lambda *a, **k: {})
    monkeypatch.setattr(tuning, "search", fake_search)
    args = ["--data-dir", tmp_path / "tiny.npz", "--val-size", 8, "--directory", tmp_path]
    for extra, backbone in ((["--backbone", "resnet20", "--gates", "se,conv_ae,eca"], "resnet"),
                            (["--backbone", "cnn3", "--gates", "all"], "cnn")):  # fmt: skip
        assert tune.main([str(a) for a in args + extra]) == 1
        assert "stopped by the test" in capsys.readouterr().err
        hm = captured["hypermodel"]
        assert hm.base_config.get("backbone", "cnn") == backbone
        assert hm.values(keras_tuner.HyperParameters())["gate"] == "conv_ae"
    assert hm.base_config["blocks"] == [64, 128, 256]
    assert hm.space["gates"] == backbones.gate_names()
    assert tune.main([str(a) for a in args]) == 1  # no flags: the search as it always was
    hm = captured["hypermodel"]
    assert hm.space["gates"] is None and hm.base_config["name"] == "cnn"
