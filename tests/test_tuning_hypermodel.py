"""The HyperModel (keras_attn.tuning.hypermodel): what a sample builds and how it compiles.

- defaults are the study's values;
- sampled points, the deepest and the widest build and run;
- models compile through `compile_for_training`: jit from `fast_path` by default,
  ``jit_compile=False`` reaches the model; bad options are refused.
"""

import keras
import keras_tuner
import numpy as np
import pytest
from tuning_helpers import FAST_SPACE, TINY_BASE, tiny

import keras_attn
from keras_attn import tuning
from keras_attn.protocol.training import fast_path
from keras_attn.tuning import hypermodel as hypermodel_module


def _sample(space, rng):
    """One random point, drawn like KerasTuner's random oracle (active values only)."""
    hps = keras_tuner.HyperParameters()
    for p in space:
        hps.merge([p])
        if hps.is_active(p):
            hps.values[p.name] = p.random_sample(int(rng.integers(1 << 30)))
    return hps.values


def test_defaults_are_the_study_values():
    hm = tuning.ConvAutoencoderHyperModel()
    config = hm.model_config(keras_tuner.HyperParameters())
    study = keras_attn.get_config("cnn_conv_ae")
    # The study's gate at every site, but one final kernel (3) everywhere, not [3, 3, 3, 2].
    expected = {
        **study,
        "name": config["name"],
        "sites": [1, 2, 3, 4],
        "conv_ae": {**study["conv_ae"], "final_kernel": 3},
    }
    assert config == expected
    assert hm.learning_rate(keras_tuner.HyperParameters()) == 0.1
    model = hm.build(keras_tuner.HyperParameters())
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    same = keras_attn.build("cnn_conv_ae", conv_ae={"final_kernel": 3})
    assert keras_attn.count_trainable_params(model) == keras_attn.count_trainable_params(same)


@pytest.mark.slow
def test_sampled_deepest_and_widest_configs_build_and_run():
    """The study's space on a slim backbone (the gate's geometry is the sites' sizes, which
    the backbone's widths leave alone)."""
    hm = tuning.ConvAutoencoderHyperModel(TINY_BASE)
    assert hm.depths == tuning.ConvAutoencoderHyperModel().depths
    space = hm.hyperparameters().space
    rng = np.random.default_rng(0)
    points = [_sample(space, rng) for _ in range(8)]
    widest = {"first_filters": 32, "eca": True}
    for placement, depths in hm.depths.items():
        for kernel in (2, 4):  # the final transposed conv's extremes
            points.append(
                {
                    **widest,
                    "sites": placement,
                    f"depth_{placement}": depths[-1],  # the deepest this placement allows
                    f"growth_{placement}": 2.0,
                    "final_kernel": kernel,
                    "attention_position": "post_norm",
                }
            )
    x = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    filters = []
    for values in points:
        keras.backend.clear_session()
        model = hm.build(values)
        probs = keras.ops.convert_to_numpy(model(x, training=False))
        assert probs.shape == (2, 10) and np.all(np.isfinite(probs))
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        filters.append(model.model_config["conv_ae"]["filters"])
    assert [32, 64, 128, 256] in filters  # the widest: deepest block-1 gate, 32 doubling
    # A non-CIFAR input: the deepest of each placement still builds.
    hm = tuning.ConvAutoencoderHyperModel(TINY_BASE, input_shape=(48, 40, 1), num_classes=3)
    for placement, depths in hm.depths.items():
        keras.backend.clear_session()
        model = hm.build({"sites": placement, f"depth_{placement}": depths[-1]})
        assert model.output_shape == (None, 3)


def test_hypermodel_compiles_on_the_fast_path_with_an_off_switch(monkeypatch):
    hp = keras_tuner.HyperParameters()
    model = tiny(FAST_SPACE).build(hp)
    assert model.jit_compile == fast_path()["jit_compile"]
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert model.loss == "sparse_categorical_crossentropy"
    assert tiny(FAST_SPACE, jit_compile=False).build(hp).jit_compile is False

    seen = []
    original = hypermodel_module.compile_for_training

    def spy(model, **kwargs):
        seen.append(kwargs["jit_compile"])
        return original(model, **kwargs)

    monkeypatch.setattr(hypermodel_module, "compile_for_training", spy)
    for jit in (None, True, False):
        tiny(FAST_SPACE, jit_compile=jit).build(hp)
    assert seen == [None, True, False]
    with pytest.raises(ValueError, match="`jit_compile` must be True, False or None"):
        tiny(FAST_SPACE, jit_compile="yes")
    with pytest.raises(ValueError, match="`mixed_precision` must be None"):
        tiny(FAST_SPACE, mixed_precision="bfloat16")


def test_mixed_bfloat16_builds_bf16_layers():
    model = tiny(FAST_SPACE, mixed_precision="mixed_bfloat16").build(keras_tuner.HyperParameters())
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(c.compute_dtype == "bfloat16" for c in convs)
    assert all(c.variable_dtype == "float32" for c in convs)
    assert keras.config.dtype_policy().name == "float32"  # restored after the build


def test_fit_needs_validation_data():
    hm = tiny(FAST_SPACE)
    x = np.zeros((4, 32, 32, 3), "uint8")
    with pytest.raises(ValueError, match="pass validation_data"):
        hm.fit({}, hm.build({}), x, np.zeros(4, "int64"))


def test_trials_train_with_a_recipe_as_the_protocol_does():
    """A recipe's optimizer, loss and augmentation reach the trial; its learning rate, epochs
    and batch size stay the search's."""
    from tuning_helpers import random_data

    from keras_attn.protocol.settings import recipe_settings

    hm = tiny(FAST_SPACE, recipe=recipe_settings("fast"))
    x, y, x_val, y_val = random_data(n_train=16, n_val=8)
    model = hm.build({})
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    history = hm.fit({}, model, x, y, validation_data=(x_val, y_val), batch_size=8, epochs=1)
    assert np.isfinite(history.history["loss"]).all()
    assert type(model.optimizer).__name__ == "CoupledSGD" and model.optimizer.nesterov
    assert model.optimizer._learning_rate.peak == lr  # the search's rate, on the recipe's cycle
    assert model.loss.__name__ == "smoothed_crossentropy"
    with pytest.raises(ValueError, match=r"Unknown recipe settings \['lr'\]"):
        tiny(FAST_SPACE, recipe={"lr": 0.1})
