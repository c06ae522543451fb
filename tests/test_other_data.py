"""Data sets other than CIFAR-10 and sizes other than 32x32 through the protocol, unchanged:
``tfds:cifar100`` (tensorflow-datasets' mock data stands in) on ``resnet20_eca``, and 40x40
images on gate models of both backbones. The classes and the input shape come from the data.
"""

import numpy as np
import pytest
from data_helpers import write_npz

from keras_attn import protocol
from keras_attn.protocol.settings import PRESETS

# What keeps a run to seconds: one run of one epoch, a few batches.
# (No XLA: compiling would take most of the test.)
TINY_RUN = {
    "runs": 1,
    "epochs": 1,
    "batch_size": 16,
    "val_size": 16,
    "threads": 2,
    "jit_compile": False,
}


def test_the_smoke_preset_on_resnet20_eca_with_tfds_cifar100(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    settings = protocol.ProtocolSettings(
        **{
            **PRESETS["smoke"]["settings"],
            **TINY_RUN,
            # The mock data set is smaller than the preset's image limits.
            "train_limit": None,
            "val_limit": None,
            "test_limit": None,
            "data": "tfds:cifar100",
        }
    )
    # Mock data: random images at cifar100's shape, labels drawn from its 100 classes.
    with tfds.testing.mock_data(num_examples=48):
        (record,) = protocol.run_protocol(["resnet20_eca"], settings, str(tmp_path), log=None)
    assert record["status"] == "finished" and record["model"] == "resnet20_eca"
    assert record["model_config"]["num_classes"] == 100
    assert record["model_config"]["backbone"] == "resnet"
    assert record["data"]["source"]["location"] == "tfds:cifar100"
    assert len(record["data"]["class_names"]) == 100
    assert 0.0 <= record["test_accuracy"] <= 1.0 and np.isfinite(record["test_loss"])
    # ECA in all nine blocks: the mask statistics cover every site.
    stats = record["mask_statistics"]
    assert [(row["site"], row["kind"]) for row in stats] == [(s, "eca") for s in range(1, 10)]


def test_another_image_size_on_gate_models_of_both_backbones(tmp_path):
    size = 40
    npz = write_npz(tmp_path / f"s{size}.npz", n_train=48, n_test=16, size=size, num_classes=4)
    settings = protocol.ProtocolSettings(**TINY_RUN, data=npz)
    models = [
        {"name": "small_cnn_conv_ae", "blocks": [4, 8], "dense_units": 8, "attention": ["conv_ae"]},
        {
            "name": "small_resnet_conv_ae_cbam",
            "backbone": "resnet",
            "depth": 8,
            "widths": [4, 8, 8],
            "attention": ["cbam", "conv_ae"],
            # 40x40 images leave 10x10 maps in the last stage: three stride-2 stages fit.
            "conv_ae": {"filters": [4, 8, 8]},
        },
    ]
    records = protocol.run_protocol(models, settings, str(tmp_path / "out"), log=None)
    assert [r["model"] for r in records] == [m["name"] for m in models]
    for record in records:
        assert record["status"] == "finished"
        assert record["model_config"]["input_shape"] == [size, size, 3]
        assert record["model_config"]["num_classes"] == 4
        assert np.isfinite(record["test_loss"])
