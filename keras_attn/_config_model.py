"""The base of the config-built models: a functional ``keras.Model`` whose config is its dict."""

import copy

import keras


class ConfigModel(keras.Model):
    """A functional model built from a JSON-able config dict (``model_config``).

    Subclasses build the graph from the config in ``__init__(config, **kwargs)`` and set
    ``self.model_config``; ``get_config`` saves that dict, so a ``.keras`` file reloads
    as the same class with the same config. Not registered: never instantiated itself.
    """

    def get_config(self):
        return {
            "config": copy.deepcopy(self.model_config),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
