"""Grad-CAM: a heatmap of the image's size in [0, 1] for every variant, the same numbers as
a direct computation, a map that follows the class asked for, and clear errors.
"""

import keras
import numpy as np
import pytest

import keras_attn
from keras_attn.attention_maps import (
    class_index_of,
    feature_grid,
    grad_cam,
    gradcam_layer,
    spatial_layers,
    to_image,
)


def small_model(name, **overrides):
    depth = len(keras_attn.get_config(name)["blocks"])
    blocks = [min(8 * 2**i, 16) for i in range(depth)]  # same depth, few filters
    return keras_attn.build(name, **{"blocks": blocks, "dense_units": 16, **overrides})


def image(shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("name", list(keras_attn.list_models("cnn*")))
def test_every_variant_gets_a_finite_heatmap_in_0_1_of_the_image_size(name):
    model = small_model(name)
    for class_index in (None, 7):
        heat = grad_cam(model, image(), class_index=class_index)
        assert heat.shape == (32, 32) and heat.dtype == np.float32
        assert np.isfinite(heat).all()
        assert 0.0 <= heat.min() <= heat.max() <= 1.0
        assert heat.max() == 1.0 or not heat.any()  # divided by its peak, or all zero


def test_grayscale_input_and_another_size():
    model = small_model("cnn_cbam", input_shape=(28, 40, 1))
    heat = grad_cam(model, image((28, 40, 1)))
    assert heat.shape == (28, 40) and np.isfinite(heat).all()


def test_the_default_class_is_the_predicted_one():
    model = small_model("cnn_eca")
    img = image(seed=3)
    predicted = int(np.argmax(model(img[None].astype("float32"), training=False)[0]))
    np.testing.assert_array_equal(grad_cam(model, img), grad_cam(model, img, predicted))


def _direct_grad_cam(model, img, class_index, layer):
    """Grad-CAM written out with one TensorFlow tape over the whole model, and numpy."""
    import tensorflow as tf

    both = keras.Model(model.inputs[0], [model.get_layer(layer).output, model.outputs[0]])
    logits_of = keras.Model(model.inputs[0], model.get_layer("logits").output)
    x = tf.constant(img[None].astype("float32"))
    with tf.GradientTape() as tape:
        features, _ = both(x, training=False)
        tape.watch(features)
        # The logits recomputed from the watched features (the same layers as the model).
        z = features
        after = False
        for lay in model.layers:
            if after and lay.name != "probabilities":
                z = lay(z, training=False)
            after = after or lay.name == layer
            if lay.name == "logits":
                break
        score = z[0, class_index]
    np.testing.assert_allclose(z.numpy(), logits_of(x, training=False).numpy(), rtol=1e-5)
    grads = tape.gradient(score, features).numpy()[0]
    cam = np.maximum((features.numpy()[0] * grads.mean(axis=(0, 1))).sum(-1), 0)
    return cam / cam.max()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the oracle uses a TF tape")
def test_matches_a_direct_computation_where_the_map_has_the_image_size():
    model = small_model("cnn_conv_ae")
    img = image(seed=5)
    layer = "block1_norm_a"  # "same" convolution: the map is the image's grid, no resampling
    want = _direct_grad_cam(model, img, 4, layer)
    np.testing.assert_allclose(grad_cam(model, img, 4, layer=layer), want, atol=1e-5)


SIZE, PATCH = 24, 6
CORNERS = [(2, 2), (15, 15)]  # where the test image has its bright and its dark patch


def _patches(n, rng):
    """Grey noise with one patch: bright (class 0) or dark (class 1), anywhere."""
    x = rng.integers(100, 156, (n, SIZE, SIZE, 1)).astype("uint8")
    y = np.arange(n) % 2
    for img, label in zip(x, y):
        r, c = rng.integers(0, SIZE - PATCH + 1, 2)
        img[r : r + PATCH, c : c + PATCH] = 255 if label == 0 else 0
    return x, y


@pytest.fixture(scope="module")
def patch_model():
    """A tiny CNN trained (32 steps) to tell a bright patch (class 0) from a dark one (1)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _patches(512, rng)
    model = keras_attn.build(
        "cnn",
        input_shape=(SIZE, SIZE, 1),
        num_classes=2,
        blocks=[8, 16],
        dense_units=16,
        dropout=0.0,
        spatial_dropout=0.0,
    )
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    both = rng.integers(100, 156, (SIZE, SIZE, 1)).astype("uint8")
    for value, (r, c) in zip((255, 0), CORNERS):
        both[r : r + PATCH, c : c + PATCH] = value
    return model, both


@pytest.mark.slow
def test_the_map_follows_the_class_asked_for(patch_model):
    model, both = patch_model
    heat = [grad_cam(model, both, class_index=c) for c in (0, 1)]
    assert np.abs(heat[0] - heat[1]).mean() > 0.1  # different classes, different maps
    on = [[h[r : r + PATCH, c : c + PATCH].mean() for r, c in CORNERS] for h in heat]
    # Class 0 (bright) lights the bright patch, class 1 (dark) the dark one.
    assert on[0][0] > 0.3 and on[0][0] > on[0][1] + 0.25, on
    assert on[1][1] > 0.3 and on[1][1] > on[1][0] + 0.25, on


def test_layers_grad_cam_can_use():
    model = small_model("cnn_eca", attention_position="post_norm")
    names = spatial_layers(model)
    assert names[0] == "block1_conv_a" and "block2_pool" in names and "flatten" not in names
    assert gradcam_layer(model) == "site4_eca"  # the last map before pooling
    assert gradcam_layer(small_model("cnn")) == "block2_norm_b"
    assert gradcam_layer(small_model("cnn3")) == "block3_norm_b"
    heat = grad_cam(model, image(), layer="block1_norm_a")
    assert heat.shape == (32, 32)


def test_bad_arguments_are_refused_with_what_is_valid():
    model = small_model("cnn")
    with pytest.raises(ValueError, match=r"`class_index` must be in \[0, 9\].*got 10"):
        grad_cam(model, image(), class_index=10)
    with pytest.raises(ValueError, match="`class_index` must be an integer >= 0, got -1"):
        grad_cam(model, image(), class_index=-1)
    with pytest.raises(ValueError, match=r"got 'block2_nrom_b'\. Did you mean 'block2_norm_b'"):
        grad_cam(model, image(), layer="block2_nrom_b")
    with pytest.raises(ValueError, match="whose output is a feature map.*got 'dense'"):
        grad_cam(model, image(), layer="dense")
    with pytest.raises(ValueError, match=r"image has shape \(16, 16, 3\)"):
        grad_cam(model, image((16, 16, 3)))
    with pytest.raises(ValueError, match="need the Keras model"):
        grad_cam(object(), image())


def test_class_index_of_names_and_indices():
    names = ["airplane", "automobile", "bird", "cat"]
    assert [class_index_of(v, names) for v in ("cat", "0", 2, np.int64(1))] == [3, 0, 2, 1]
    assert class_index_of("7", None, 10) == 7
    with pytest.raises(ValueError, match="Unknown class 'cta'. Did you mean 'cat'.*0..3"):
        class_index_of("cta", names)
    with pytest.raises(ValueError, match=r"Unknown class 4\. Give a class index 0..3"):
        class_index_of("4", names)
    with pytest.raises(ValueError, match="Unknown class True"):
        class_index_of(True, names)


def test_feature_grid_follows_valid_convolutions_and_pooling():
    model = small_model("cnn_cbam")
    assert feature_grid(model, "block1_conv_a") == ((0.0, 1.0), (0.0, 1.0))
    assert feature_grid(model, "site2_cbam") == ((1.0, 1.0), (1.0, 1.0))
    assert feature_grid(model, "block1_pool") == ((1.5, 2.0), (1.5, 2.0))
    assert feature_grid(model, "block2_norm_b") == ((3.5, 2.0), (3.5, 2.0))
    assert feature_grid(model, "dense") is None
    # Each position's value lands on its centre pixel; beyond the outermost, their values.
    values = np.arange(30 * 30, dtype="float32").reshape(30, 30)
    on_image = to_image(values, feature_grid(model, "site2_cbam"), (32, 32))
    np.testing.assert_array_equal(on_image[1:31, 1:31], values)
    np.testing.assert_array_equal(on_image[0, 1:31], values[0])
    np.testing.assert_array_equal(on_image[31, 1:31], values[-1])
    # Between two centres, the pixels are interpolated linearly.
    line = to_image(np.array([[0.0, 1.0]]), ((0.0, 1.0), (1.0, 2.0)), (1, 5))
    np.testing.assert_allclose(line, [[0.0, 0.0, 0.5, 1.0, 1.0]])
    # Without a grid the map is stretched over the image (pixel centres at half steps).
    np.testing.assert_allclose(to_image(np.array([[0.0, 1.0]]), None, (1, 4)), [[0, 0.25, 0.75, 1]])
