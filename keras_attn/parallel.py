"""Train several runs of one model at once: N independent copies packed in one Keras model.

The protocol trains each model 16 times with different seeds. On an
accelerator one small CNN leaves most of the device idle; packing N runs into
one model makes every step N times bigger without changing any run's
arithmetic. This works on every Keras backend without custom vectorisation:

- `build_copies` builds the N networks exactly as a single run would build
  them (``keras.utils.set_random_seed(seed)``, then the model), so each copy
  starts from the same weights, and the same dropout seeds, as its plain run.
- `pack_models` wraps them in one functional model with N inputs and N
  outputs (named ``copy0``, ``copy1``...). `compile_packed` gives every output
  its own loss; Keras minimises their sum. The copies share no parameter, so
  the gradient of the sum with respect to copy ``i``'s weights is the
  gradient of copy ``i``'s own loss: each copy trains as if alone.
  (Optimizers that couple parameters break this: a *global* gradient-norm
  clip, or the shared dynamic loss scale of ``mixed_float16``, which skips a
  step for all copies when one overflows. `compile_packed` refuses the first.)
- `PackedBatches` feeds copy ``i`` its own shuffled batches, the ones
  `keras_attn.data.ArrayBatches` with copy ``i``'s seed would give it.
- `evaluate_copies` validates every copy in one pass over the data.

After training, the copies *are* the trained models (the packed model holds
them, it does not copy their weights): save or evaluate ``copies[i]`` as usual.
A test checks that a few packed steps give the same weights as training each
copy alone, within float tolerance.

How much packing gains is measured by `keras_attn.benchmark.packing`
(``python scripts/benchmark.py --copies 1,2,4``); figures in docs/performance.md.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_attn.data import ArrayBatches

__all__ = [
    "PackedBatches",
    "build_copies",
    "compile_packed",
    "evaluate_copies",
    "pack_models",
]


def _check_seeds(seeds):
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"`seeds` must be a list of integers, got {seeds!r}.")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("`seeds` is empty: give one seed per copy.")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"`seeds` must be integers >= 0, got {seeds!r} (bad entry {s!r}).")
    return [int(s) for s in seeds]


def build_copies(name_or_config, seeds, **overrides):
    """Build one network per seed, each exactly as a single seeded run builds it.

    For each seed: ``keras.utils.set_random_seed(seed)``, then
    ``keras_attn.build(name_or_config, **overrides)``, the calls a single run
    makes, so copy ``i`` starts from the weights (and dropout seeds) of the run
    seeded ``seeds[i]``; the copy is then renamed ``copy{i}`` (the name does not
    touch the weights). Note that this leaves the global random state at the
    last seed's.

    Args:
        name_or_config: a variant name or a config (as for `keras_attn.build`).
        seeds: list of ints, one per copy (e.g. the protocol's run seeds).
        **overrides: as for `keras_attn.build` (``input_shape``, ``num_classes``
            and config overrides).

    Returns:
        list of `keras_attn.AttentionCNN`, one per seed.

    Example:
    >>> copies = build_copies("cnn", seeds=[0, 1])
    >>> [m.name for m in copies]
    ['copy0', 'copy1']
    """
    from keras_attn.zoo import build

    seeds = _check_seeds(seeds)
    copies = []
    for i, seed in enumerate(seeds):
        # Exactly the calls of a single run: building consumes random numbers (every
        # layer constructor draws its initializer's seed), so nothing may come between.
        keras.utils.set_random_seed(seed)
        model = build(name_or_config, **overrides)
        model.name = f"copy{i}"  # packed models need distinct names; weights are unaffected
        copies.append(model)
    return copies


def pack_models(models, name="packed"):
    """One functional model with N inputs and N outputs: ``models[i]`` maps input i to output i.

    The packed model holds the given models (no copy): training it trains them.

    Args:
        models: list of single-input, single-output ``keras.Model``s with
            distinct names (`build_copies` names them ``copy0``...).
        name: str, the packed model's name.

    Returns:
        A ``keras.Model`` with inputs ``copy{i}_pixels`` and outputs named
        after the models.

    Example:
    >>> packed = pack_models(build_copies("cnn", seeds=[0, 1]))
    >>> len(packed.inputs), packed.output_names
    (2, ['copy0', 'copy1'])
    """
    models = list(models)
    if not models:
        raise ValueError("`models` is empty: give at least one model to pack.")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(
            f"The models to pack need distinct names, got {names}. Build them with "
            "`build_copies`, which names them copy0, copy1, ..."
        )
    inputs, outputs = [], []
    for model in models:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(
                f"Model {model.name!r} has {len(model.inputs)} inputs and "
                f"{len(model.outputs)} outputs; pack_models needs one of each."
            )
        x = keras.Input(tuple(model.inputs[0].shape[1:]), name=f"{model.name}_pixels")
        inputs.append(x)
        outputs.append(model(x))
    packed = keras.Model(inputs, outputs, name=name)
    if keras.backend.backend() == "torch":
        _register_torch_parameters(packed)
    return packed


def _register_torch_parameters(packed):
    """Register every copy's variables with torch under distinct keys.

    Keras' torch backend keys a model's ``torch.nn.ParameterDict`` by variable
    path (``block1_conv_a/kernel``), which is the same in every copy: all but
    the last copy's parameters would be dropped, so ``zero_grad`` would not
    clear their gradients and they would accumulate from step to step (found
    by this module's test with keras 3.15.1).
    """
    import torch

    def track_variables():
        packed._torch_params = torch.nn.ParameterDict(
            {f"v{i}": v.value for i, v in enumerate(packed.variables)}
        )

    # Keras calls this again when the model is (re)built: keep the distinct keys.
    packed._track_variables = track_variables
    track_variables()


def compile_packed(
    packed, optimizer=None, *, jit_compile=None, metrics=("accuracy",), learning_rate=0.01
):
    """Compile a packed model: one sparse cross-entropy loss and one set of metrics per copy.

    Keras minimises the sum of the per-copy losses, which trains every copy
    independently (their parameters are disjoint).

    Args:
        packed: a model from `pack_models`.
        optimizer: a ``keras.optimizers.Optimizer``, default ``SGD(learning_rate)``.
            Must not clip by *global* norm (that would couple the copies).
        jit_compile: bool or None (default: `keras_attn.training.fast_path`'s).
        metrics: per-copy metrics, default ``("accuracy",)``.
        learning_rate: float, default 0.01 (only for the default optimizer).

    Returns:
        The packed model, compiled.

    Example:
    >>> packed = compile_packed(pack_models(build_copies("cnn", seeds=[0, 1])))
    >>> type(packed.optimizer).__name__, len(packed.loss)
    ('SGD', 2)
    """
    from keras_attn.training import fast_path

    if optimizer is None:
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
    if getattr(optimizer, "global_clipnorm", None):
        raise ValueError(
            f"The optimizer clips by global norm (global_clipnorm={optimizer.global_clipnorm}), "
            "which would couple the packed copies; use clipnorm (per variable) or none."
        )
    if jit_compile is None:
        jit_compile = fast_path()["jit_compile"]
    n = len(packed.outputs)
    packed.compile(
        optimizer=optimizer,
        loss=["sparse_categorical_crossentropy"] * n,
        metrics=[list(metrics) for _ in range(n)],
        jit_compile=bool(jit_compile),
    )
    return packed


class PackedBatches(keras.utils.PyDataset):
    """Batches for a packed model: copy ``i`` gets ArrayBatches(seed=seeds[i])'s batches.

    Batch ``j`` is ``((x_0, ..., x_{N-1}), (y_0, ..., y_{N-1}))`` where
    ``(x_i, y_i)`` is batch ``j`` of ``ArrayBatches(x, y, batch_size,
    shuffle=True, seed=seeds[i])``: every copy sees the images in the order its
    own run would. Call `set_epoch` before each epoch.

    Args:
        x: uint8 images ``(n, h, w, c)``.
        y: integer labels ``(n,)``.
        batch_size: images per batch and copy.
        seeds: one shuffling seed per copy.
        shuffle: bool, default True. Without shuffling all copies see the
            same batches in order.
        **kwargs: passed to `keras.utils.PyDataset` (``workers``...).

    Example:
    >>> x = np.zeros((10, 32, 32, 3), "uint8"); y = np.zeros(10, "int64")
    >>> batches = PackedBatches(x, y, 4, seeds=[0, 1])
    >>> xs, ys = batches[0]
    >>> len(xs), xs[0].shape
    (2, (4, 32, 32, 3))
    """

    def __init__(self, x, y, batch_size, seeds, *, shuffle=True, **kwargs):
        super().__init__(**kwargs)
        seeds = _check_seeds(seeds)
        self.parts = [ArrayBatches(x, y, batch_size, shuffle=shuffle, seed=s) for s in seeds]
        self.seeds = seeds
        self.epoch = 0

    def set_epoch(self, epoch):
        """Select every copy's order for epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)
        for part in self.parts:
            part.set_epoch(epoch)

    def __len__(self):
        return len(self.parts[0])

    def __getitem__(self, index):
        xs, ys = zip(*(part[index] for part in self.parts))
        return tuple(xs), tuple(ys)


def evaluate_copies(packed, x, y, batch_size=256):
    """Loss and accuracy of every copy on the same images, in one pass.

    Computed in NumPy from the predicted probabilities (inference mode), with
    Keras' clipping of probabilities for the cross-entropy.

    Args:
        packed: a model from `pack_models`.
        x: uint8 (or float) images ``(n, h, w, c)``, raw 0..255 values.
        y: integer labels ``(n,)``.
        batch_size: int, default 256.

    Returns:
        list of ``{"loss": float, "accuracy": float}``, one per copy.

    Example:
    >>> small = {"input_shape": (8, 8, 3), "blocks": [4], "dense_units": 8}
    >>> packed = pack_models(build_copies("cnn", seeds=[0, 1], **small))
    >>> x = np.zeros((4, 8, 8, 3), "uint8"); y = np.zeros(4, "int64")
    >>> [sorted(r) for r in evaluate_copies(packed, x, y)]
    [['accuracy', 'loss'], ['accuracy', 'loss']]
    """
    from keras_attn.training import loss_and_accuracy

    n = len(packed.inputs)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
    probs = [[] for _ in range(n)]
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start : start + batch_size], dtype="float32")
        out = packed.predict_on_batch([xb] * n)
        out = out if isinstance(out, (list, tuple)) else [out]
        for i, p in enumerate(out):
            probs[i].append(np.asarray(keras.ops.convert_to_numpy(p), dtype=np.float64))
    scores = [loss_and_accuracy(np.concatenate(p), y) for p in probs]
    return [{"loss": loss, "accuracy": acc} for loss, acc in scores]
