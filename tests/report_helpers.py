"""Hand-made protocol records for the report tests (tests/test_report*.py)."""

from __future__ import annotations

from keras_attn._files import json_line

ACC = {
    "cnn": [0.70, 0.71, 0.69, 0.72, 0.70],
    "cnn_eca": [0.73, 0.74, 0.72, 0.75, 0.73],
    "cnn3": [0.68, 0.66, 0.67],
}
PARAMS = {"cnn": 2_625_866, "cnn_eca": 2_625_882, "cnn3": 1_677_130}


def make_record(model, run, acc, sid="aaaa", diverged=False, runs=5):
    """One record with the fields the report reads."""
    return {
        "model": model,
        "run": run,
        "seed": run,
        "settings_id": sid,
        "status": "diverged" if diverged else "finished",
        "diverged": diverged,
        "best_epoch": None if acc is None else 3,
        "best_val_accuracy": acc,
        "test_accuracy": acc,
        "test_loss": 1.0,
        "val_accuracy": [] if acc is None else [acc - 0.2, acc - 0.05, acc],
        "trainable_params": PARAMS.get(model, 1),
        "epoch_seconds": [2.0, 2.0],
        "wall_time_s": 4.5,
        "settings": {
            "runs": runs,
            "optimizer": "sgd",
            "learning_rate": 0.1,
            "epochs": 10,
            "base_seed": 0,
        },
        "preprocessing": "none",
        "augmentation": "none",
        "data": {"source": {"kind": "folder", "location": "/d"}, "counts": {}, "split": {}},
        "environment": {"backend": "tensorflow", "device": "CPU", "host": "h"},
    }


def make_records():
    """cnn x5, cnn_eca x5 + one diverged after a good epoch, cnn3 x3 + one diverged before."""
    recs = [make_record(m, i, a) for m, accs in ACC.items() for i, a in enumerate(accs)]
    recs.append(make_record("cnn_eca", 5, 0.60, diverged=True))  # diverged after a good epoch
    recs.append(make_record("cnn3", 3, None, diverged=True))  # diverged before any
    return recs


def write_records(out, records):
    """Write ``records`` as ``out/records/<sid>/<model>/run-NNNN.json``."""
    for r in records:
        p = out / "records" / r["settings_id"] / r["model"] / f"run-{r['run']:04d}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(json_line(r))
