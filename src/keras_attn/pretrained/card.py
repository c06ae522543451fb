"""The model card of a published model: ``README.md`` with the Hugging Face Hub's front matter."""

from __future__ import annotations

import json

__all__ = ["readme_card"]


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _yaml(value):
    """A YAML scalar: JSON's quoting of strings is valid YAML."""
    return json.dumps(value)


def _front_matter(meta):
    name, dataset = meta["model"], meta["dataset"]
    label = f"test accuracy of run {meta['run']}"
    tags = ["keras_attn", "image-classification", "attention", *meta.get("gates", [])]
    lines = ["---", "library_name: keras", "pipeline_tag: image-classification", "tags:"]
    lines += [f"- {_yaml(tag)}" for tag in dict.fromkeys(tags)]
    lines += ["datasets:", f"- {_yaml(dataset)}", "metrics:", "- accuracy", "model-index:"]
    lines += [
        f"- name: {_yaml(name)}",
        "  results:",
        "  - task:",
        "      type: image-classification",
        "      name: Image Classification",
        "    dataset:",
        f"      name: {_yaml(dataset)}",
        f"      type: {_yaml(dataset)}",
        "      split: test",
        "    metrics:",
        "    - type: accuracy",
        f"      value: {meta['test_accuracy']}",
        f"      name: {_yaml(label)}",
        "---",
    ]
    return "\n".join(lines)


def readme_card(meta):
    """The ``README.md`` of a published model, from its metadata (`keras_attn.pretrained.publish`).

    YAML front matter for the Hugging Face Hub (library, tags, datasets, metrics,
    and the test accuracy as a model-index result), then what the model is, its
    run's and its variant's figures as the protocol's report computes them, its
    provenance and how to load it.

    Args:
        meta: dict, the ``keras_attn`` part of the folder's ``metadata.json``.

    Returns:
        str, Markdown.

    Example:
    >>> meta = {"model": "cnn_eca", "dataset": "cifar10", "gates": ["eca"], "run": 3,
    ...         "seed": 3, "chosen_by": "the highest validation accuracy", "test_accuracy": 0.7412,
    ...         "best_val_accuracy": 0.745, "settings_id": "ab12", "data_fingerprint": "ff00",
    ...         "input_shape": [32, 32, 3], "class_names": ["a", "b"], "preprocessing": "none",
    ...         "variant": {"n": 2, "mean": 0.74, "ci95": [0.72, 0.76], "std": 0.01},
    ...         "weights_sha256": "00aa", "keras_attn_version": "0.1.0", "keras_version": "3"}
    >>> card = readme_card(meta)
    >>> card.splitlines()[:3]
    ['---', 'library_name: keras', 'pipeline_tag: image-classification']
    >>> "| this run's test accuracy | 74.12 % |" in card
    True
    """
    variant = meta["variant"]
    low, high = variant.get("ci95") or (None, None)
    interval = f"{_pct(low)} to {_pct(high)}" if low is not None else "n/a (one run)"
    classes = meta.get("class_names") or []
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    gates = ", ".join(meta.get("gates") or []) or "none"
    name = meta["model"]
    body = f"""
# {name}

A keras_attn model (attention gates: {gates}) trained on {meta["dataset"]} by the
multi-seed protocol of keras_attn; this is run {meta["run"]} (seed {meta["seed"]}),
chosen for {meta["chosen_by"]}.

| | |
|---|---|
| this run's test accuracy | {_pct(meta["test_accuracy"])} |
| this run's best validation accuracy | {_pct(meta.get("best_val_accuracy"))} |
| the variant's mean test accuracy over {variant["n"]} runs | {_pct(variant.get("mean"))} |
| its 95 % confidence interval (t) | {interval} |
| settings id | `{meta["settings_id"]}` |
| data fingerprint | `{meta["data_fingerprint"]}` |
| input | {meta["input_shape"]}, {meta.get("preprocessing") or "raw pixels"} |
| classes | {len(classes)}: {shown} |
| weights SHA-256 | `{meta["weights_sha256"]}` |
| made with | keras_attn {meta["keras_attn_version"]}, Keras {meta["keras_version"]} |

The figures are the protocol's records' (`keras-attn report` computes the same mean
and interval); the variant's figures describe all its runs, this run's figures one.

## Load it

```python
import keras_attn

model = keras_attn.load_pretrained("path/to/{name}")  # this folder
# from an https address of this folder, checked against its SHA-256:
# keras_attn.load_pretrained("https://.../{name}", sha256="{meta["weights_sha256"]}")
# from the Hugging Face Hub (pip install huggingface_hub):
# keras_attn.load_pretrained("hf://OWNER/{name}")
probabilities = model.predict(images)  # uint8 or float pixels, 0..255
```

`keras_attn.build("{name}", weights="path/to/{name}")` builds the same model and
loads these weights into it. The folder is also a Keras model folder
(`config.json`, `metadata.json`, `model.weights.h5`): after `import keras_attn`,
`keras.saving.load_model` reads it too.
"""
    return _front_matter(meta) + "\n" + body
