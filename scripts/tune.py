"""KerasTuner search over the conv-autoencoder gate's depth, widths and placement.

    python scripts/tune.py                  # Hyperband on CIFAR-10, results in tuning/ae_hyperband/
    python scripts/tune.py --tuner bayesian --max-trials 40 --data-dir ~/cifar10-folder \
        --project ae_search
    python scripts/tune.py --preset smoke   # a few minutes on a laptop CPU
    python scripts/tune.py --preset smoke --no-jit --mixed-precision mixed_bfloat16

Trials train on the fast path of keras_attn.training.fast_path: XLA (--jit) where
it is faster (JAX, TensorFlow on a GPU), not on a TensorFlow CPU; --jit / --no-jit
override it. --mixed-precision mixed_bfloat16 (or mixed_float16) builds the models
under that dtype policy; it is off by default. The start-up lines say which jit
setting and dtype policy are used, and why.

Rerunning the same command resumes the search: finished trials are never run
again. A search resumes with or without --jit (it changes results only within
float tolerance), but not with another --mixed-precision (it changes results: the
folder is refused with the difference listed).

Distributed: start the same command once with KERASTUNER_TUNER_ID=chief and once
per worker with KERASTUNER_TUNER_ID=tuner0, tuner1, ..., all with
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set and the same --directory.
See keras_attn/tuning.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _json_arg(text):
    """A JSON value given inline or as the path of a JSON file."""
    path = Path(text).expanduser()
    if path.suffix == ".json" or path.exists():
        try:
            return json.loads(path.read_text())
        except OSError as e:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}: {e}") from None
        except json.JSONDecodeError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not valid JSON: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON file or inline JSON, got {text!r} ({e})"
        ) from None


def build_parser(presets, tuners):
    from keras_attn import _cli

    epilog = ["presets (flags given on the command line override them):"]
    for name, p in presets.items():
        epilog.append(f"  {name}: {p['description']}")
        epilog.append(f"      settings: {json.dumps(p['settings'])}; project: {p['project']}")
    epilog += [
        "  smoke reads the offline CIFAR-10 JPEG copy (../shared/data/cifar10-jpeg.tar.gz, "
        "unpacked once into .data/) when present, else tfds:cifar10.",
        "",
        "distributed (KerasTuner's chief/worker mode; every process shares --directory):",
        "  export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000",
        "  KERASTUNER_TUNER_ID=chief  python scripts/tune.py --preset smoke &  # serves",
        "  KERASTUNER_TUNER_ID=tuner0 python scripts/tune.py --preset smoke    # trains",
        "",
        "outputs in <directory>/<project>/: best_config.json (keras_attn.build takes it "
        "unchanged), best_trial.json, top_trials.md, top_trials.csv",
    ]
    ap = argparse.ArgumentParser(
        description="Search the conv-autoencoder gate's depth, widths, final kernel, "
        "placement, ECA and learning rate with KerasTuner (objective: validation accuracy), "
        "then print the top trials and the command that checks the best one over many seeds.",
        epilog="\n".join(epilog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--preset", choices=sorted(presets), default="default")
    s = ap.add_argument_group("search (defaults: the preset's)")
    s.add_argument("--tuner", choices=tuners, help="search algorithm")
    s.add_argument(
        "--max-trials",
        type=int,
        help="random/bayesian: trials (default 30); hyperband: a cap on its trials",
    )
    s.add_argument(
        "--epochs", type=int, help="epochs per trial (hyperband: the most a trial trains)"
    )
    s.add_argument("--batch-size", type=int, help="training batch size")
    s.add_argument("--factor", type=int, help="Hyperband's reduction factor (default 3)")
    s.add_argument("--seed", type=int, help="seed of the oracle and of every trial's weights")
    s.add_argument(
        "--space",
        type=_json_arg,
        help="search-space changes as a JSON file or inline JSON, merged over "
        'keras_attn.tuning.DEFAULT_SPACE, e.g. \'{"eca": [true], "first_filters": [8, 16]}\'',
    )
    s.add_argument(
        "--base",
        default="cnn",
        help="the network the gates go into: a model name or a config JSON file (default cnn)",
    )
    o = ap.add_argument_group("output")
    o.add_argument("--directory", default="tuning", help="folder of projects (default tuning)")
    o.add_argument("--project", help="project folder name (default: the preset's)")
    o.add_argument(
        "--overwrite", action="store_true", help="delete the project folder and start again"
    )
    o.add_argument("--top-k", type=int, default=5, help="rows of the results table (default 5)")
    o.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="0: summaries only; 1: progress bars; 2: one line per epoch (default)",
    )
    _cli.add_data_arguments(ap, title="data (as in scripts/protocol.py)", test_limit=False)
    r = ap.add_argument_group("execution")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    r.add_argument(
        "--no-deterministic", action="store_true", help="do not enable deterministic ops"
    )
    _cli.add_fast_path_arguments(
        r,
        mixed_precision_help="build the models under this dtype policy (default: float32); "
        "changes results, so a project folder resumes only with the same policy",
    )
    return ap


def _protocol_data_args(args, values):
    """The data flags that make scripts/protocol.py train on the search's data."""
    out = []
    if args.dataset:
        out += ["--dataset", args.dataset]
    elif args.data_dir or values["data"] != "tfds:cifar10":
        out += ["--data-dir", values["data"]]
    if args.tfds_dir:
        out += ["--tfds-dir", args.tfds_dir]
    for flag in ("val_size", "split_seed"):
        if flag in values:
            out += [f"--{flag.replace('_', '-')}", str(values[flag])]
    if values.get("cache_dir"):
        out += ["--cache-dir", str(values["cache_dir"])]
    return out


def _load_data(values, log):
    from keras_attn.data import load_dataset

    t0 = time.perf_counter()
    data = load_dataset(
        values["data"],
        val_size=values.get("val_size", 5000),
        split_seed=values.get("split_seed", 0),
        tfds_data_dir=values.get("tfds_data_dir"),
        download=values.get("download", False),
        cache_dir=values.get("cache_dir"),
    )
    if values.get("train_limit") or values.get("val_limit"):
        data = data.take(values.get("train_limit"), values.get("val_limit"))
    log(
        f"data: {values['data']}: {len(data.y_train):,} train / {len(data.y_val):,} val images "
        f"{data.input_shape}, {data.num_classes} classes ({time.perf_counter() - t0:.1f}s)"
    )
    return data


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    from keras_attn import _cli, tuning

    ap = build_parser(tuning.PRESETS, tuning.TUNERS)
    args = ap.parse_args(argv)
    preset = tuning.PRESETS[args.preset]
    values = dict(preset["settings"])
    for flag in ("tuner", "max_trials", "epochs", "batch_size", "factor", "seed"):
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    values.update(_cli.data_settings(args, ap, smoke_repo=REPO if args.preset == "smoke" else None))
    values.setdefault("data", "tfds:cifar10")
    if args.data_dir:
        values["data"] = str(Path(args.data_dir).expanduser())
    protocol_args = _protocol_data_args(args, values)
    settings = {key: values[key] for key in tuning.SEARCH_DEFAULTS if key in values}
    settings.update(
        directory=args.directory,
        project_name=args.project or preset["project"].format(tuner=values["tuner"]),
        overwrite=args.overwrite,
    )

    def log(line):
        print(line, flush=True)

    try:
        import keras

        from keras_attn import protocol

        role = tuning.distributed_role()
        settings = tuning.check_search_settings(top_k=args.top_k, **settings)
        top_k = settings.pop("top_k")
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")  # one retracing warning per new trial
        protocol.configure_runtime(args.threads, not args.no_deterministic)
        data = _load_data(values, log)
        base = args.base
        if base.endswith(".json") or Path(base).expanduser().is_file():
            base = json.loads(Path(base).expanduser().read_text())
        hypermodel = tuning.ConvAutoencoderHyperModel(
            base,
            input_shape=data.input_shape,
            num_classes=data.num_classes,
            space=args.space,
            seed=settings["seed"],
            jit_compile=args.jit,
            mixed_precision=args.mixed_precision,
        )
        settings["data_fingerprint"] = data.fingerprint()
        tuner = tuning.search(
            hypermodel,
            data.x_train,
            data.y_train,
            data.x_val,
            data.y_val,
            verbose=args.verbose,
            log=log,
            **settings,
        )
        if role == "worker":
            log(
                f"worker {os.environ['KERASTUNER_TUNER_ID']} done; the chief writes the "
                f"results into {tuner.project_dir}"
            )
            return 0
        results = tuning.write_results(
            tuner.project_dir, hypermodel, top_k, protocol_args=protocol_args
        )
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print()
    print(results["table"])
    print()
    print(f"best config: {results['best_config']} (keras_attn.build(json.load(f)) builds it)")
    print(f"tables: {results['markdown']}, {results['csv']}")
    print("a single trial's accuracy is not evidence; compare with cnn over 16 seeds:")
    print(f"  {results['command']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
