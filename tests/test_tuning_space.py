"""The search space (keras_attn.tuning.space, and the HyperModel that declares it).

- the depth is conditioned on the placement, as deep as each placement's smallest
  site allows;
- every point of the space gives a valid, distinct config (exhaustive);
- a bad space gets a clear error.
"""

import json

import keras_tuner
import pytest
from tuning_helpers import enumerate_space

from keras_attn import get_config, tuning
from keras_attn.backbone import site_sizes
from keras_attn.layers import max_depth
from keras_attn.tuning import hparams
from keras_attn.tuning import space as space_module


def test_depth_is_conditioned_on_the_placement():
    hm = tuning.ConvAutoencoderHyperModel()
    # CIFAR sites: 32x32, 30x30 (block 1), 15x15, 13x13 (block 2).
    assert hm.depths == {"block1": [1, 2, 3, 4], "block2": [1, 2, 3], "all": [1, 2, 3]}
    space = {p.name: p for p in hm.hyperparameters().space}
    for placement, depths in hm.depths.items():
        depth = space[f"depth_{placement}"]
        assert list(depth.values) == depths
        assert [(c.name, list(c.values)) for c in depth.conditions] == [("sites", [placement])]
        growth = space[f"growth_{placement}"]
        assert [(c.name, list(c.values)) for c in growth.conditions][1] == (
            f"depth_{placement}",
            [d for d in depths if d >= 2],
        )
    # Other inputs and networks: each placement goes as deep as its smallest site allows.
    for base, shape in (("cnn", (64, 48, 1)), ("cnn3", (32, 32, 3)), ("cnn", (20, 20, 3))):
        hm = tuning.ConvAutoencoderHyperModel(base, input_shape=shape)
        sizes = site_sizes(hm.base_config)
        for placement, sites in hm.space["sites"].items():
            limit = min(max_depth(min(sizes[s - 1][:2])) for s in sites)
            assert hm.depths[placement] == list(range(1, limit + 1))
    assert tuning.ConvAutoencoderHyperModel(space={"max_depth": 2}).depths["block1"] == [1, 2]


def test_every_point_of_the_space_is_a_valid_distinct_config():
    hm = tuning.ConvAutoencoderHyperModel()
    seen = set()
    for values in enumerate_space(hm.hyperparameters().space, skip=("learning_rate",)):
        config = hm.model_config(values)  # validates it (keras_attn.get_config)
        key = json.dumps(config, sort_keys=True)
        assert key not in seen, f"two points give one config: {values}"
        seen.add(key)
    assert len(seen) == hm.size()[0] == 2160


def test_the_declared_space_is_the_hypermodels():
    base = get_config("cnn")
    space, depths = space_module.resolve_space(None, base)
    hp = keras_tuner.HyperParameters()
    chosen = hparams.declare(hp, space, depths)
    assert chosen == tuning.ConvAutoencoderHyperModel().values({})
    # The order KerasTuner's oracles see (their random draws follow it).
    assert [p.name for p in hp.space] == [
        "sites", "depth_block1", "growth_block1", "depth_block2", "growth_block2",
        "depth_all", "growth_all", "first_filters", "final_kernel", "activation",
        "attention_position", "eca", "learning_rate",
    ]  # fmt: skip
    assert hparams.count_points(space, depths) == (2160, 4)
    assert hparams.widths(12, 2.0, 3) == [12, 24, 48]
    assert hparams.widths(1, 0.25, 2) == [1, 1]  # never below one filter


def test_space_errors_are_clear():
    with pytest.raises(ValueError, match="'growth' is empty"):
        tuning.ConvAutoencoderHyperModel(space={"growth": []})
    with pytest.raises(ValueError, match="'sites' is empty"):
        tuning.ConvAutoencoderHyperModel(space={"sites": {}})
    single = {
        "sites": {"all": [1, 2, 3, 4]},
        "min_depth": 3,
        "max_depth": 3,
        "attention_position": ["pre_activation"],
        "eca": [False],
        "first_filters": [12],
        "growth": [2.0],
        "final_kernel": [3],
        "learning_rate": [0.1],
    }
    with pytest.raises(ValueError, match="single point"):
        tuning.ConvAutoencoderHyperModel(space=single)
    with pytest.raises(ValueError, match="Did you mean 'growth'"):
        tuning.ConvAutoencoderHyperModel(space={"grwth": [2.0]})
    with pytest.raises(ValueError, match=r"'block2' \(sites \[3, 4\]\) allows at most 3"):
        tuning.ConvAutoencoderHyperModel(space={"min_depth": 4})
    with pytest.raises(ValueError, match="sites from 1 to 4"):
        tuning.ConvAutoencoderHyperModel(space={"sites": {"deep": [5]}})
    with pytest.raises(ValueError, match="'post_relu' is not one of"):
        tuning.ConvAutoencoderHyperModel(space={"attention_position": ["post_relu"]})
    with pytest.raises(ValueError, match="does not hold"):
        tuning.ConvAutoencoderHyperModel().model_config({"sites": "block2", "depth_block2": 4})
    with pytest.raises(ValueError, match="'max_depth' must be None or an integer >= min_depth"):
        tuning.ConvAutoencoderHyperModel(space={"min_depth": 2, "max_depth": 1})
    with pytest.raises(ValueError, match="`seed` must be an integer >= 1, got 0"):
        tuning.ConvAutoencoderHyperModel(seed=0)
