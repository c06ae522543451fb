"""Run the study's multi-seed protocol (Table 1) and write records and a report.

    keras-attn protocol --preset smoke --download    # the whole pipeline in minutes
    keras-attn protocol --data-dir ~/cifar10-folder  # the study: 9 variants x 16 runs
    keras-attn protocol --backend jax --time-budget 8m   # on a GPU, as much as fits
    keras-attn protocol --launcher slurm --partition gpu --gpus-per-job 1 --out /shared/r
    keras-attn protocol --shard auto ...             # in a SLURM array or Indexed Job

Rerunning the same command resumes: finished runs are skipped and an interrupted
run continues from its last finished epoch. The work is `keras_attn.protocol`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from keras_attn.cli import arguments

__all__ = ["main"]


def _pre_parse_backend(argv):
    """Set KERAS_BACKEND from --backend, if keras is not imported yet."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--backend", choices=arguments.BACKENDS)
    known, _ = pre.parse_known_args(argv)
    if known.backend and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = known.backend


#: The training settings of `keras_attn.protocol.ProtocolSettings`, in --help's order.
TRAINING = ("runs", "epochs", "optimizer", "learning_rate", "momentum", "batch_size",
            "base_seed", "model_overrides", "precision")  # fmt: skip
#: The recipe's settings: optimizer details, schedule, regularisation, augmentation.
RECIPE = ("nesterov", "weight_decay", "weight_decay_mode", "schedule", "step_at",
          "step_factor", "warmup", "label_smoothing", "augmentation", "crop_padding",
          "pad_mode")  # fmt: skip
#: The settings of how a run executes (not part of the settings id).
EXECUTION = ("threads", "deterministic", "jit_compile", "trainer", "group_size", "grad_form",
             "epoch_form", "checkpoint_every", "compile_cache")  # fmt: skip


def build_parser(presets, models=None, prog=None):
    """The parser of ``keras-attn protocol``; ``models`` (names) are listed in its epilog."""
    from keras_attn import _fields
    from keras_attn.protocol.settings import RECIPES, ProtocolSettings

    epilog = ["presets (flags given on the command line override them):"]
    for name, p in presets.items():
        epilog.append(f"  {name}: {p['description']}")
        if p["settings"]:
            epilog.append(f"      settings: {json.dumps(p['settings'])}")
        if p["models"]:
            epilog.append(f"      models: {','.join(p['models'])}")
    epilog.append(
        "  data: CIFAR-10 through tensorflow-datasets (add --download the first time), or "
        "--data-dir with an image folder, an .npz file or a .tar.gz of an image folder."
    )
    if models:
        epilog.append("models: " + ", ".join(models))
    epilog.append(
        "assumptions where the study is silent: plain SGD (momentum 0), batch size 128, "
        "no augmentation, no preprocessing beyond the model's 1/255 rescaling, seeds "
        "base_seed + run, validation = a seeded random 5,000 of the 50,000 training images. "
        "Every setting, with its default and whether it is part of the settings id: "
        "docs/protocol.md."
    )
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Train each model --runs times (different seeds), keep each run's "
        "best-validation epoch, evaluate it on the test set, and report mean, std, 95% CI "
        "and Welch's t-test against cnn.",
        epilog="\n".join(epilog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", choices=sorted(presets), default="study")
    ap.add_argument(
        "--models",
        help="comma-separated model names or config .json files, e.g. a tuner's "
        "best_config.json (default: the preset's)",
    )
    ap.add_argument(
        "--out", help="output folder, local or tf.io.gfile path (default: results/<preset>)"
    )
    titles = {
        "training (defaults: the preset's, else the study's)": TRAINING,
        "recipe (defaults: --recipe's, else none of it: the study's)": RECIPE,
    }
    _fields.add_arguments(ap, ProtocolSettings, TRAINING + RECIPE, titles=titles)
    ap.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="a named training recipe over the preset (flags given override it): "
        + "; ".join(f"{name}: {r['description']}" for name, r in RECIPES.items()).replace(
            "%", "%%"
        ),
    )
    arguments.add_data_arguments(ap)
    r = ap.add_argument_group("execution")
    r.add_argument(
        "--shard",
        help="run shard I/N of the runs (1-based: 1/2 and 2/2; shards may write to one output "
        "folder), or 'auto': the shard of this SLURM array task or Kubernetes Indexed Job pod",
    )
    r.add_argument(
        "--allow-mixed",
        action="store_true",
        help="allow an output folder that holds records of other settings",
    )
    r.add_argument(
        "--backend",
        choices=arguments.BACKENDS,
        help="Keras backend (default: KERAS_BACKEND or tensorflow)",
    )
    r.add_argument(
        "--time-budget",
        metavar="DURATION",
        help="start no run or group that would not finish within this time from the start "
        "(seconds, or e.g. 8m, 2h, 1h30m; estimated from measured epoch times), write the "
        "report of what is done and exit 0; rerun the same command to continue",
    )
    _fields.add_arguments(r, ProtocolSettings, EXECUTION)
    r.add_argument(
        "--progress-every",
        type=float,
        default=60.0,
        help="seconds between in-epoch progress lines (0: none; default 60)",
    )
    r.add_argument("--no-report", action="store_true", help="do not write the report")
    r.add_argument(
        "--no-weights",
        action="store_true",
        help="do not keep each run's best weights (about 11 MB a run; needed for --export)",
    )
    r.add_argument(
        "--export",
        nargs="?",
        const="saved_models",
        default=None,
        metavar="DIR",
        help="when done, export each model's best-validation run to DIR/<model>/ "
        "(default DIR: saved_models)",
    )
    r.add_argument("--quiet", action="store_true", help="print only the final summary")
    arguments.add_verbose_argument(r)
    j = ap.add_argument_group(
        "launcher (submit the pending runs as a job array through submitit, one job per "
        "group of runs; every job writes into the one --out)"
    )
    j.add_argument(
        "--launcher",
        choices=("slurm", "local"),
        help="slurm: sbatch a job array; local: the same jobs as local processes",
    )
    j.add_argument("--partition", help="SLURM partition")
    j.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per job (default 0)")
    j.add_argument("--cpus-per-job", type=int, help="CPUs per job")
    j.add_argument("--job-time", metavar="DURATION", help="time limit per job (e.g. 2h)")
    j.add_argument("--array-parallelism", type=int, help="jobs of the array running at once")
    j.add_argument(
        "--launcher-folder",
        help="submitit's folder for job scripts and logs (default OUT/submitit)",
    )
    j.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the jobs are submitted (make the report later with keras-attn report)",
    )
    return ap


def settings_from_args(args, ap, preset):
    """The `ProtocolSettings` a preset and the flags given make (flags win)."""
    from keras_attn import _fields
    from keras_attn.protocol.settings import ProtocolSettings, recipe_settings

    values = dict(preset["settings"])
    if args.recipe:
        values.update(recipe_settings(args.recipe))
    values.update(arguments.data_settings(args, ap))
    values.update(_fields.given(args, ProtocolSettings, TRAINING + RECIPE + EXECUTION))
    return ProtocolSettings(**values)


def _shard(args, log):
    from keras_attn import protocol

    if args.shard != "auto":
        return args.shard
    (i, n), where = protocol.shard_from_environment()
    log(f"shard {i}/{n} from {where}")
    return f"{i}/{n}"


def _launch(args, models, settings, out, log):
    from keras_attn import protocol

    job_minutes = None
    if args.job_time:
        job_minutes = max(1, round(protocol.parse_duration(args.job_time) / 60))
    return protocol.launch(
        models,
        settings,
        out,
        launcher=args.launcher,
        folder=args.launcher_folder,
        shard=_shard(args, log),
        allow_mixed=args.allow_mixed,
        save_weights=not args.no_weights,
        wait=not args.no_wait,
        partition=args.partition,
        gpus_per_job=args.gpus_per_job,
        cpus_per_job=args.cpus_per_job,
        job_minutes=job_minutes,
        parallelism=args.array_parallelism,
        log=log,
    )


def _export(args, models, out):
    from keras_attn import protocol
    from keras_attn.export import export_best

    for spec in protocol.resolve_models(models):
        card = export_best(out, spec.name, out_root=args.export, overwrite=True)
        summary = card.get("record_summary", {})
        print(
            f"exported {spec.name} (run {summary.get('run')}, val accuracy "
            f"{summary.get('best_val_accuracy')}) -> {Path(args.export) / spec.name}",
            flush=True,
        )


def main(argv=None, prog=None):
    """Run ``keras-attn protocol ARGS``; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``). ``--backend`` needs
            Keras not yet imported, or imported on that backend (otherwise exit status 2).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when done (or stopped by ``--time-budget``), 2 on bad settings or data.

    Example:
    >>> main(["--runs", "0"])  # runs must be positive: one line on stderr, exit status 2
    2
    """
    argv = sys.argv[1:] if argv is None else argv
    _pre_parse_backend(argv)
    from keras_attn.protocol.budget import parse_duration
    from keras_attn.protocol.plan import parse_shard
    from keras_attn.protocol.settings import PRESETS

    listed = None
    if "-h" in argv or "--help" in argv:  # the help lists the models: the zoo needs Keras
        arguments.load_backend("--verbose" in argv)
        import keras_attn

        listed = list(keras_attn.list_models())
    ap = build_parser(PRESETS, listed, prog=prog)
    args = ap.parse_args(argv)
    try:  # every check that needs no backend, before one loads
        settings = settings_from_args(args, ap, PRESETS[args.preset])
        parse_duration(args.time_budget)
        if args.shard not in (None, "auto"):
            parse_shard(args.shard)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keras = arguments.load_backend(args.verbose)
    from keras_attn import protocol, report
    from keras_attn.runtime import configure_runtime

    loaded = keras.backend.backend()
    if args.backend and args.backend != loaded:
        ap.error(
            f"--backend {args.backend}: Keras is already loaded on {loaded} in this process "
            "(a backend is fixed when Keras is first imported); run the command in a fresh "
            "process, or set KERAS_BACKEND before importing Keras"
        )
    if args.export and args.no_weights:
        ap.error("--export needs the runs' weights; drop --no-weights")
    preset = PRESETS[args.preset]
    out = args.out or str(Path("results") / args.preset)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    t0 = time.perf_counter()
    try:
        protocol.resolve_training(settings)  # a setting this backend's trainer refuses
        models = args.models if args.models is not None else preset["models"]
        shard = _shard(args, log) if not args.launcher else None
        tasks = protocol.plan_tasks(models, settings.runs, shard)  # validate first
        protocol.parse_duration(args.time_budget)
        configure_runtime(settings.threads, settings.deterministic)
        if args.launcher:
            submitted = _launch(args, models, settings, out, log)
            if args.no_wait:
                print(
                    f"{len(submitted)} job(s) submitted; when they are done: "
                    f"keras-attn report {out}",
                    flush=True,
                )
                return 0
            finished = tasks  # the jobs ran them (their records are in out)
        else:
            finished = protocol.run_protocol(
                models,
                settings,
                out,
                shard=shard,
                allow_mixed=args.allow_mixed,
                log=log,
                progress_every=args.progress_every,
                save_weights=not args.no_weights,
                time_budget=args.time_budget,
            )
    except (ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = time.perf_counter() - t0
    if not args.no_report:
        records = report.load_records(out)
        paths = report.write_report(out, records)
        if not args.quiet:
            print(report.format_markdown(report.summarize(records), records))
        print("report: " + ", ".join(paths.values()))
    left = len(tasks) - len(finished)
    if left:
        print(
            f"time budget reached after {total:.1f}s: {len(finished)} of {len(tasks)} runs "
            f"finished, {left} left; rerun the same command to continue (records in "
            f"{out}/records)",
            flush=True,
        )
        return 0
    print(f"protocol finished in {total:.1f}s; records in {out}/records", flush=True)
    if args.export:
        _export(args, models, out)
    return 0
