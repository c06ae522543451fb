"""The end of a run: its best weights on the test set, its masks, its weights file, its record."""

from __future__ import annotations

import os
import posixpath
import tempfile
import time

from keras_attn import _files as files
from keras_attn.backbone import count_trainable_params
from keras_attn.data import ArrayBatches
from keras_attn.data.augment import describe as describe_augmentation
from keras_attn.protocol import records
from keras_attn.protocol.settings import PREPROCESSING, RECORD_FORMAT, run_seed
from keras_attn.protocol.training import loss_and_accuracy
from keras_attn.runtime import environment

__all__ = ["MASK_STATISTICS_IMAGES"]

#: Test images whose attention masks each record describes (`_mask_statistics`).
MASK_STATISTICS_IMAGES = 1000


def _mask_statistics(model, data):
    """How much each attention mask of ``model`` varies over the first test images.

    ``None`` for a model without attention blocks. See
    `keras_attn.attention_maps.mask_statistics`.
    """
    from keras_attn import attention_maps

    if not attention_maps.attention_layers(model):
        return None
    images = data.x_test[:MASK_STATISTICS_IMAGES]
    return attention_maps.mask_statistics(model, images, batch_size=250)


def _save_weights(path, model):
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "best.weights.h5")
        model.save_weights(local)
        with open(local, "rb") as f:
            files.write_atomic(path, f.read())


def finish_run(job, run_index, model, best_values, state, test=None, masks=None):
    """Evaluate the best weights on the test set, save them, write the record; return it.

    ``test``: ``(probabilities, seconds)`` of the best weights on the test set when the
    trainer computed them already (the JAX trainer, for a whole group); ``None``: predict.
    ``masks``: the best weights' mask statistics when the trainer computed them; ``None``:
    computed here.
    """
    name, settings, data, out_dir, sid = job.spec.name, job.settings, job.data, job.out_dir, job.sid
    t0 = time.perf_counter()
    test_loss = test_acc = None
    if best_values is not None:
        records.assign(model.variables, best_values, "model")
        if test is None or test[0] is None:
            probs = model.predict(ArrayBatches(data.x_test, None, settings.batch_size), verbose=0)
        else:
            probs = test[0]
        test_loss, test_acc = loss_and_accuracy(probs, data.y_test)
    test_seconds = time.perf_counter() - t0 + (test[1] if test is not None else 0.0)
    if best_values is not None and masks is None:
        masks = _mask_statistics(model, data)
    weights_rel = None
    if job.save_weights and best_values is not None:
        _save_weights(records.weights_path(out_dir, sid, name, run_index), model)
        weights_rel = posixpath.join("weights", sid, name, f"run-{run_index:04d}.weights.h5")
    fingerprint = data.fingerprint()
    record = {
        "format": RECORD_FORMAT,
        "model": name,
        "run": int(run_index),
        "seed": run_seed(settings.base_seed, run_index),
        "settings_id": sid,
        "status": "diverged" if state["diverged"] else "finished",
        "diverged": state["diverged"],
        "diverged_epoch": state["diverged_epoch"],
        "epochs_trained": state["epochs_done"],
        "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_val_accuracy"],
        "val_accuracy": state["val_accuracy"],
        "val_loss": state["val_loss"],
        "train_accuracy": state["train_accuracy"],
        "train_loss": state["train_loss"],
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "weights": weights_rel,
        "trainable_params": count_trainable_params(model),
        "mask_statistics": masks,
        "epoch_seconds": state["epoch_seconds"],
        "epoch_cpu_seconds": state["epoch_cpu_seconds"],
        "test_seconds": test_seconds,
        "wall_time_s": float(sum(state["epoch_seconds"]) + test_seconds),
        "resumed_at_epochs": state["resumed_at_epochs"],
        "started_at": state["started_at"],
        "finished_at": records.now(),
        "settings": settings.to_dict(),
        "comparable_settings": settings.comparable(fingerprint),
        "training": job.training,
        "preprocessing": PREPROCESSING,
        "augmentation": describe_augmentation(
            settings.augmentation, settings.crop_padding, settings.pad_mode
        ),
        "model_config": job.spec.config(job.build_kwargs),
        "data": data.describe(),
        "environment": environment(data.source.get("kind")),
    }
    files.write_json(records.record_path(out_dir, sid, name, run_index), record)
    acc_text = f"{test_acc:.4f}" if test_acc is not None else "n/a"
    job.log(
        f"[{name} run {run_index}] done: test accuracy {acc_text} "
        f"(best epoch {state['best_epoch']}{', DIVERGED' if state['diverged'] else ''}), "
        f"{record['wall_time_s']:.1f}s"
    )
    return record
