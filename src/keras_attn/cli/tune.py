"""KerasTuner search over the conv-autoencoder gate's depth, widths and placement.

    keras-attn tune                  # Hyperband on CIFAR-10, results in tuning/ae_hyperband/
    keras-attn tune --tuner bayesian --max-trials 40 --data-dir ~/cifar10-folder \
        --project ae_search
    keras-attn tune --preset smoke   # a few minutes on a laptop CPU
    keras-attn tune --preset smoke --no-jit --precision bf16

Trials train on the fast path of keras_attn.protocol.training.fast_path: XLA (--jit) where
it is faster (JAX, TensorFlow on a GPU), not on a TensorFlow CPU; --jit / --no-jit
override it. --precision bf16 (or fp16) builds the models under Keras' mixed
bfloat16 (float16) policy; it is off by default. The start-up lines say which jit
setting and dtype policy are used, and why.

Rerunning the same command resumes the search: finished trials are never run
again. A search resumes with or without --jit (it changes results only within
float tolerance), but not with another --precision (it changes results: the
folder is refused with the difference listed).

Distributed: start the same command once with KERASTUNER_TUNER_ID=chief and once
per worker with KERASTUNER_TUNER_ID=tuner0, tuner1, ..., all with
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT set and the same --directory.
See docs/tuning.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]

#: The execution settings a search shares with the protocol (their declarations); a
#: precision other than the backend's changes results, so a project resumes only with it.
EXECUTION = ("threads", "deterministic", "jit_compile", "precision")


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


def build_parser(presets, tuners, prog=None):
    from keras_attn import _fields
    from keras_attn.cli import arguments
    from keras_attn.protocol.settings import RECIPES, ProtocolSettings

    epilog = ["presets (flags given on the command line override them):"]
    for name, p in presets.items():
        epilog.append(f"  {name}: {p['description']}")
        epilog.append(f"      settings: {json.dumps(p['settings'])}; project: {p['project']}")
    epilog += [
        "  data (every preset): CIFAR-10 through tensorflow-datasets, prepared once with "
        "--download (or by keras-attn protocol --download); or --data-dir PATH: an image "
        "folder, a .tar.gz of one, or an .npz file.",
        "",
        "distributed (KerasTuner's chief/worker mode; every process shares --directory):",
        "  export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000",
        "  KERASTUNER_TUNER_ID=chief  keras-attn tune --preset smoke &  # serves",
        "  KERASTUNER_TUNER_ID=tuner0 keras-attn tune --preset smoke    # trains",
        "",
        "outputs in <directory>/<project>/: best_config.json (keras_attn.build takes it "
        "unchanged), best_trial.json, top_trials.md, top_trials.csv",
    ]
    ap = argparse.ArgumentParser(
        prog=prog,
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
        'keras_attn.tuning.space.DEFAULT_SPACE, e.g. \'{"eca": [true], "first_filters": [8, 16]}\'',
    )
    s.add_argument(
        "--base",
        default="cnn",
        help="the network the gates go into: a model name or a config JSON file (default cnn)",
    )
    s.add_argument(
        "--backbone",
        help="the network the gates go into, by name: cnn, cnn3 or a CIFAR ResNet (resnet20, "
        "...); sites are then its residual blocks",
    )
    s.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help="train every trial with this recipe's optimizer, schedule, weight decay, loss "
        "and augmentation (keras-attn protocol --help lists them); the learning rate, epochs "
        "and batch size stay the search's",
    )
    s.add_argument(
        "--gates",
        help="also search the gate type: registered gate names separated by commas "
        "(e.g. eca,cbam,se,conv_ae) or all (default: the conv-AE gate alone)",
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
    arguments.add_data_arguments(ap, title="data (as in keras-attn protocol)", test_limit=False)
    r = ap.add_argument_group("execution")
    _fields.add_arguments(r, ProtocolSettings, EXECUTION)
    return ap


def _data_settings(values):
    """The search's data as a `keras_attn.data.DataSettings` (the data keys of ``values``)."""
    from keras_attn.data import DataSettings

    fields = {f.name for f in dataclasses.fields(DataSettings)}
    data = DataSettings(**{key: v for key, v in values.items() if key in fields})
    if not data.data.startswith("tfds:"):
        data = dataclasses.replace(data, data=str(Path(data.data).expanduser()))
    return data


def _load_data(data, log):
    t0 = time.perf_counter()
    dataset = data.load()
    log(
        f"data: {data.data}: {len(dataset.y_train):,} train / {len(dataset.y_val):,} val images "
        f"{dataset.input_shape}, {dataset.num_classes} classes ({time.perf_counter() - t0:.1f}s)"
    )
    return dataset


def main(argv=None, prog=None):
    """Run ``keras-attn tune ARGS``; return the exit status.

    Args:
        argv: list of str, the arguments (default ``sys.argv[1:]``).
        prog: str, the program name usage lines show.

    Returns:
        int: 0 when the search is done, 2 on bad settings, data or a missing
        package (KerasTuner), 1 when the search itself fails.

    Example:
    >>> main(["--max-trials", "0"])  # one line on stderr, exit status 2
    2
    """
    argv = sys.argv[1:] if argv is None else argv
    from keras_attn.cli import arguments

    arguments.load_backend("--verbose" in argv)  # KerasTuner loads the backend: quietly
    try:
        from keras_attn import tuning
        from keras_attn.tuning.presets import PRESETS, SEARCH_DEFAULTS, TUNERS
    except ImportError as e:  # keras-tuner is not installed
        print(f"error: {e}", file=sys.stderr)
        return 2
    ap = build_parser(PRESETS, TUNERS, prog=prog)
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    values = dict(preset["settings"])
    for flag in ("tuner", "max_trials", "epochs", "batch_size", "factor", "seed"):
        if getattr(args, flag) is not None:
            values[flag] = getattr(args, flag)
    values.update(arguments.data_settings(args, ap))
    settings = {key: values[key] for key in SEARCH_DEFAULTS if key in values}
    settings.update(
        directory=args.directory,
        project_name=args.project or preset["project"].format(tuner=values["tuner"]),
        overwrite=args.overwrite,
    )

    def log(line):
        print(line, flush=True)

    try:
        import keras

        from keras_attn import runtime
        from keras_attn.protocol.precision import apply_precision
        from keras_attn.protocol.settings import POLICIES, recipe_settings

        role = tuning.distributed_role()
        settings = tuning.check_search_settings(top_k=args.top_k, **settings)
        top_k = settings.pop("top_k")
        model = tuning.model_settings(
            backbone=args.backbone, base=args.base, gates=args.gates, space=args.space
        )
        data = _data_settings(values)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")  # one retracing warning per new trial
        runtime.configure_runtime(args.threads, args.deterministic is not False)
        apply_precision(args.precision)
        dataset = _load_data(data, log)
        hypermodel = tuning.ConvAutoencoderHyperModel(
            model["base"],
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            space=model["space"],
            seed=settings["seed"],
            jit_compile=args.jit_compile,
            mixed_precision=POLICIES.get(args.precision),
            recipe=recipe_settings(args.recipe) if args.recipe else None,
        )
        settings["data_fingerprint"] = dataset.fingerprint()
        tuner = tuning.search(
            hypermodel,
            dataset.x_train,
            dataset.y_train,
            dataset.x_val,
            dataset.y_val,
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
        protocol_args = tuning.protocol_data_args(data)
        if args.recipe:  # the protocol trains the best config as it was tuned
            protocol_args += ["--recipe", args.recipe]
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
