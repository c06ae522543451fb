"""Images to predictions (keras_attn.predict): decoding, resizing, the uint8 batch, predict and
top-k, and keras-attn predict on an export. Every format's predictions
are tested in test_export.py.
"""

import json

import keras
import numpy as np
import pytest
from export_helpers import TOL, load_script, small_model, uint8_images
from PIL import Image

from keras_attn import export
from keras_attn.predict import (
    fit_image,
    image_shape,
    load_images,
    predict,
    read_image,
    top_k,
)


def _save(array, path, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_image_that_cannot_be_decoded_is_named(tmp_path):
    bad = tmp_path / "cat.png"
    bad.write_text("this is not a PNG")
    with pytest.raises(ValueError, match="Cannot decode .*cat.png"):
        read_image(bad)
    with pytest.raises(FileNotFoundError, match="ship.jpg"):
        read_image(tmp_path / "ship.jpg")


def test_images_of_another_size_are_cropped_stretched_or_refused(tmp_path):
    # 32 high, 64 wide: left quarter red, middle half green, right quarter blue.
    wide = np.zeros((32, 64, 3), np.uint8)
    wide[:, :16, 0] = 255
    wide[:, 16:48, 1] = 255
    wide[:, 48:, 2] = 255
    path = _save(wide, tmp_path / "wide.png")

    cropped, notes = load_images([path], (32, 32, 3))
    assert cropped.shape == (1, 32, 32, 3) and cropped.dtype == np.uint8
    assert "center-cropped and resized to 32x32" in notes[0]
    assert cropped[0, :, 4:28, 1].min() == 255 and cropped[0, :, 4:28, [0, 2]].max() == 0

    stretched, notes = load_images([path], (16, 16, 3), resize="stretch")
    assert stretched.shape == (1, 16, 16, 3) and "stretched" in notes[0]
    assert stretched[0, :, 0, 0].min() > 200 and stretched[0, :, -1, 2].min() > 200

    with pytest.raises(ValueError, match=r"wide.png: Image is 32x64.*model takes 32x32.*--resize"):
        load_images([path], (32, 32, 3), resize="none")
    same, notes = load_images([path], (32, 64, 3), resize="none")
    assert notes == [None] and np.array_equal(same[0], wide)
    with pytest.raises(ValueError, match="`resize` must be one of"):
        fit_image(wide, (32, 32), resize="pad")


def test_grayscale_and_rgba_are_converted_to_the_model_channels(tmp_path):
    gray = _save(np.full((8, 8), 100, np.uint8), tmp_path / "gray.png")
    rgb = read_image(gray, channels=3)
    assert rgb.shape == (8, 8, 3) and (rgb == 100).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half fully transparent
    path = _save(rgba, tmp_path / "rgba.png")
    rgb = read_image(path, channels=3)
    assert (rgb[:4] == [255, 0, 0]).all() and (rgb[4:] == 255).all()  # transparent -> white
    assert read_image(path, channels=1).shape == (8, 8, 1)
    with pytest.raises(ValueError, match="`channels` must be 1 .* or 3 .*got 4"):
        read_image(path, channels=4)


def test_predict_and_top_k():
    model = small_model("cnn_eca")
    images = uint8_images((32, 32, 3))
    probs = predict(model, images)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    np.testing.assert_allclose(probs, expected, atol=TOL)
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(predict(model, images, batch_size=2), probs, atol=TOL)
    assert image_shape(model) == (32, 32, 3)
    with pytest.raises(ValueError, match="must be uint8"):
        predict(model, images.astype("float32"))
    with pytest.raises(ValueError, match=r"takes images \(32, 32, 3\), got \(16, 16, 3\)"):
        predict(model, uint8_images((16, 16, 3)))
    with pytest.raises(ValueError, match=r"must be a batch"):
        predict(model, images[0])
    with pytest.raises(ValueError, match="onnxruntime.InferenceSession or a TFLite Interpreter"):
        predict("model.onnx", images)
    ranked = top_k([[0.1, 0.6, 0.3]], ["cat", "dog", "ship"], k=5)
    assert ranked == [[("dog", 0.6), ("ship", 0.3), ("cat", 0.1)]]
    with pytest.raises(ValueError, match="`k` must be a positive integer, got 0"):
        top_k([[1.0]], k=0)


# --------------------------------------------------------------------------- the script


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="SavedModel export needs the TF backend"
)
def test_predict_script_prints_top_k_with_class_names(tmp_path, monkeypatch, capsys):
    script = load_script("predict", monkeypatch)
    folder = tmp_path / "export"
    names = [f"class_{c}" for c in range(10)]
    formats = ("keras", "saved_model")
    export.export_model(small_model("cnn_conv_ae"), folder, class_names=names, formats=formats)
    cat = _save(uint8_images((40, 48, 3), n=1)[0], tmp_path / "cat.png")
    ship = _save(uint8_images((32, 32, 3), n=1)[0], tmp_path / "ship.jpg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    assert script.main([str(folder), str(cat), str(ship), "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "cat.png  (center-cropped and resized to 32x32)" in out
    assert out.count("  1. class_") == 2 and "  4. " not in out

    assert script.main([str(folder), str(ship), str(broken), "--json", "--format=saved_model"]) == 1
    captured = capsys.readouterr()
    assert "Cannot decode" in captured.err and "broken.png" in captured.err
    line = json.loads(captured.out.strip().splitlines()[0])
    assert line["image"] == str(ship) and len(line["top_k"]) == 5

    assert script.main([str(folder), str(cat), "--resize", "none"]) == 1
    assert "model takes 32x32" in capsys.readouterr().err
    assert script.main([str(tmp_path), str(cat)]) == 2
    assert "is not a model export" in capsys.readouterr().err
    assert script.main([str(folder), str(cat), "--format", "onnx"]) == 2
    assert "has no 'onnx' artifact" in capsys.readouterr().err
