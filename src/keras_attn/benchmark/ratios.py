"""Figures derived from the timings: ratios to the baseline, the protocol's projected time."""

from __future__ import annotations

import statistics

__all__ = ["BASELINE", "DEFAULT_TARGET", "add_ratios", "project_protocol"]

#: The target: a variant's step time ratio to ``cnn`` over its MAC ratio, at most this.
DEFAULT_TARGET = 1.2
#: The variant every ratio is taken against, measured in the same run and setting.
BASELINE = "cnn"


def add_ratios(results, target=DEFAULT_TARGET):
    """Add each entry's ratios to the baseline measured in the same run and setting.

    ``train_step_ratio`` is the ratio of median step times; ``cost_over_arithmetic``
    divides it by the MAC ratio and ``meets_target`` compares that with
    ``target``. Figures less sensitive to other processes on the machine are
    added: ``train_step_ratio_paired``, the median over windows of the ratio of
    the variant's window to the baseline's window of the same round (taken
    seconds apart); ``train_step_ratio_best``, the ratio of the fastest
    windows; and, where CPU times were recorded, ``train_cpu_ratio`` (median
    process CPU seconds per step over the baseline's), with
    ``cost_over_arithmetic_cpu`` and ``meets_target_cpu``.

    Args:
        results: list of result entries (`run_benchmark`'s ``"results"``).
        target: float, default 1.2.

    Returns:
        ``results``, updated in place.

    Example:
    >>> rows = [{"model": "cnn", "setting": "graph", "train_step_s": [1.0, 1.2],
    ...          "inference_batch_s": [0.3], "mac_ratio": 1.0},
    ...         {"model": "cnn_x", "setting": "graph", "train_step_s": [2.0, 2.6],
    ...          "inference_batch_s": [0.6], "mac_ratio": 2.0}]
    >>> round(add_ratios(rows)[1]["cost_over_arithmetic"], 3)
    1.045
    """
    for entry in results:
        entry["train_step_ms"] = 1000 * statistics.median(entry["train_step_s"])
        entry["inference_batch_ms"] = 1000 * statistics.median(entry["inference_batch_s"])
    for entry in results:
        base = next(
            e for e in results if e["model"] == BASELINE and e["setting"] == entry["setting"]
        )
        entry["train_step_ratio"] = entry["train_step_ms"] / base["train_step_ms"]
        entry["train_step_ratio_paired"] = statistics.median(
            a / b for a, b in zip(entry["train_step_s"], base["train_step_s"])
        )
        entry["train_step_ratio_best"] = min(entry["train_step_s"]) / min(base["train_step_s"])
        entry["inference_ratio"] = entry["inference_batch_ms"] / base["inference_batch_ms"]
        entry["cost_over_arithmetic"] = entry["train_step_ratio"] / entry["mac_ratio"]
        entry["cost_over_arithmetic_paired"] = entry["train_step_ratio_paired"] / entry["mac_ratio"]
        entry["meets_target"] = entry["cost_over_arithmetic"] <= target
        if entry.get("train_step_cpu_s") and base.get("train_step_cpu_s"):
            entry["train_cpu_ms"] = 1000 * statistics.median(entry["train_step_cpu_s"])
            entry["train_cpu_ratio"] = entry["train_cpu_ms"] / (
                1000 * statistics.median(base["train_step_cpu_s"])
            )
            entry["cost_over_arithmetic_cpu"] = entry["train_cpu_ratio"] / entry["mac_ratio"]
            entry["meets_target_cpu"] = entry["cost_over_arithmetic_cpu"] <= target
    return results


def project_protocol(
    results,
    *,
    runs=16,
    epochs=10,
    train_images=45000,
    val_images=5000,
    test_images=10000,
):
    """Projected wall time of the study's protocol from measured throughputs.

    Per variant: ``runs * epochs`` epochs of ``train_images`` at the measured
    training images/s, plus a validation pass of ``val_images`` after each epoch
    and one test pass per run at the measured inference images/s, one run at a
    time. Input-pipeline and per-epoch overheads are not included (the fit
    check in the benchmark shows how small they are).

    Args:
        results: `run_benchmark`'s ``"results"`` (one setting per variant is used:
            the first seen).
        runs, epochs: int, default 16 and 10 (the study's).
        train_images, val_images, test_images: int, default CIFAR-10's split.

    Returns:
        dict: ``{"per_variant_hours": {...}, "total_hours": float, "assumptions": str}``.

    Example:
    >>> rows = [{"model": "cnn", "train_images_per_s": 4500.0, "inference_images_per_s": 10000.0}]
    >>> round(project_protocol(rows)["total_hours"], 3)
    0.471
    """
    per_variant = {}
    for e in results:
        if e["model"] in per_variant:
            continue
        train = runs * epochs * train_images / e["train_images_per_s"]
        infer = runs * (epochs * val_images + test_images) / e["inference_images_per_s"]
        per_variant[e["model"]] = (train + infer) / 3600
    return {
        "per_variant_hours": per_variant,
        "total_hours": sum(per_variant.values()),
        "assumptions": f"{runs} runs x {epochs} epochs x {train_images} training images, "
        f"validation on {val_images} per epoch, test on {test_images} per run; one run at a "
        "time; no pipeline or epoch overhead",
    }
