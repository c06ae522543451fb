"""Convolutional Block Attention Module (CBAM): channel gate, spatial gate, both.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
https://arxiv.org/abs/1807.06521

The three layers here are the paper's two sub-modules and their composition.
Departure from the paper: none. Note that the study keras_attn reproduces put a
BatchNorm after the 7x7 spatial convolution (as the paper's official code does).
"""

import keras
from keras import ops

from keras_attn.layers._checks import check_positive_int, check_rank4
from keras_attn.layers._gate import AttentionGate


def _global_max(x):
    """The maximum over height and width, shape ``(batch, C)``.

    The same values on every backend: on TensorFlow a max pooling over the whole
    map (its gradient is one kernel), elsewhere a reduction; docs/performance.md
    says why. Gradients differ only between tied maxima (pooling gives the first,
    the reduction splits it).
    """
    height, width = x.shape[1], x.shape[2]
    if keras.backend.backend() == "tensorflow" and height and width:
        pooled = ops.max_pool(x, pool_size=(height, width), strides=(height, width))
        return ops.reshape(pooled, (-1, x.shape[-1]))
    return ops.max(x, axis=(1, 2))


@keras.saving.register_keras_serializable(package="keras_attn")
class CBAMChannelGate(AttentionGate):
    """CBAM's channel attention: a shared MLP over average- and max-pooled channels.

    The global-average and global-max pooled vectors go through the same MLP
    ``C -> C // reduction -> C`` (with biases, ReLU between); the two outputs
    are summed, passed through a sigmoid and scale each channel.

    Args:
        reduction: int, default 16. Channel reduction ratio of the MLP's hidden
            layer (at least one hidden unit is kept).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> tuple(CBAMChannelGate()(np.ones((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    """

    def __init__(self, reduction=16, **kwargs):
        super().__init__(**kwargs)
        self.reduction = check_positive_int("reduction", reduction)
        self.hidden = None
        self.out = None

    def build(self, input_shape):
        check_rank4(self, input_shape)
        channels = input_shape[-1]
        hidden = max(channels // self.reduction, 1)
        self.hidden = keras.layers.Dense(
            hidden, activation="relu", dtype=self.dtype_policy, name="hidden"
        )
        self.out = keras.layers.Dense(channels, dtype=self.dtype_policy, name="out")
        self.hidden.build((None, channels))
        self.out.build((None, hidden))

    def gate(self, inputs):
        """Per-channel weights in (0, 1), shape ``(batch, 1, 1, C)``."""
        avg = self.out(self.hidden(ops.mean(inputs, axis=(1, 2))))
        mx = self.out(self.hidden(_global_max(inputs)))
        return ops.sigmoid(avg + mx)[:, None, None, :]

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction})
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class CBAMSpatialGate(AttentionGate):
    """CBAM's spatial attention: a 7x7 convolution over channel-pooled maps.

    The max and the mean over channels are stacked into two maps, a
    ``kernel_size`` x ``kernel_size`` convolution (no bias) makes one map,
    BatchNorm and a sigmoid turn it into one weight per position, which scales
    every channel at that position.

    Args:
        kernel_size: int, default 7.
        momentum: float, default 0.9. BatchNorm momentum (Keras convention; 0.9
            is PyTorch's default, the framework of the study and of CBAM's code).
        epsilon: float, default 1e-5. BatchNorm epsilon (PyTorch's default).
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> tuple(CBAMSpatialGate()(np.ones((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    """

    def __init__(self, kernel_size=7, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.momentum = momentum
        self.epsilon = epsilon
        self.conv = keras.layers.Conv2D(
            1, kernel_size, padding="same", use_bias=False, dtype=self.dtype_policy, name="conv"
        )
        self.norm = keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, dtype=self.dtype_policy, name="norm"
        )

    def build(self, input_shape):
        check_rank4(self, input_shape)
        self.conv.build((None, input_shape[1], input_shape[2], 2))
        self.norm.build((None, input_shape[1], input_shape[2], 1))

    def gate(self, inputs, training=None):
        """Per-position weights in (0, 1), shape ``(batch, H, W, 1)``."""
        pooled = ops.concatenate(
            [ops.max(inputs, axis=-1, keepdims=True), ops.mean(inputs, axis=-1, keepdims=True)],
            axis=-1,
        )
        return ops.sigmoid(self.norm(self.conv(pooled), training=training))

    def call(self, inputs, training=None):
        return inputs * self.gate(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"kernel_size": self.kernel_size, "momentum": self.momentum, "epsilon": self.epsilon}
        )
        return config


@keras.saving.register_keras_serializable(package="keras_attn")
class CBAM(AttentionGate):
    """CBAM: `CBAMChannelGate` followed by `CBAMSpatialGate`.

    Args:
        reduction: int, default 16. Channel gate's MLP reduction ratio.
        spatial_kernel_size: int, default 7. Spatial gate's kernel size.
        momentum: float, default 0.9. Spatial gate's BatchNorm momentum.
        epsilon: float, default 1e-5. Spatial gate's BatchNorm epsilon.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> layer = CBAM()
    >>> tuple(layer(np.ones((2, 8, 8, 64), "float32")).shape)
    (2, 8, 8, 64)
    """

    def __init__(self, reduction=16, spatial_kernel_size=7, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.spatial_kernel_size = spatial_kernel_size
        self.momentum = momentum
        self.epsilon = epsilon
        self.channel = CBAMChannelGate(reduction, dtype=self.dtype_policy, name="channel")
        self.spatial = CBAMSpatialGate(
            spatial_kernel_size, momentum, epsilon, dtype=self.dtype_policy, name="spatial"
        )

    def build(self, input_shape):
        self.channel.build(input_shape)
        self.spatial.build(input_shape)

    def gate(self, inputs, training=None):
        """The overall multiplicative mask, shape ``(batch, H, W, C)``."""
        channel_mask = self.channel.gate(inputs)
        spatial_mask = self.spatial.gate(ops.multiply(inputs, channel_mask), training=training)
        return channel_mask * spatial_mask

    def call(self, inputs, training=None):
        x = self.channel(inputs)
        return self.spatial(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "spatial_kernel_size": self.spatial_kernel_size,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
            }
        )
        return config
