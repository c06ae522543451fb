"""Trained gated models to share: a protocol run published as a folder, loaded by path, URL or hf://.

`publish` writes a folder that Keras itself reads (``config.json``,
``metadata.json``, ``model.weights.h5``, as ``keras.saving.save_model(...,
zipped=False)`` writes them) with the run's provenance in the metadata and a model
card ``README.md`` that the Hugging Face Hub reads (`keras_attn.pretrained.card`);
`load_pretrained` loads such a folder from disk, an https address or the Hub, and
`load_weights` gives a model built by name the weights of one.
"""

from keras_attn.pretrained.loading import load_pretrained, load_weights
from keras_attn.pretrained.publish import publish

__all__ = ["load_pretrained", "load_weights", "publish"]
