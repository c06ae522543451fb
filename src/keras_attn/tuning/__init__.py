"""KerasTuner search over attention gates: the conv-AE's depth and widths, the gate type, sites.

How to use it, the search space and how a search resumes: docs/tuning.md. The space is
`keras_attn.tuning.space.DEFAULT_SPACE`; the presets and tuners are in
`keras_attn.tuning.presets`; the trials' table is `keras_attn.tuning.results.format_trials`.
"""

try:
    import keras_tuner as _keras_tuner  # noqa: F401
except ModuleNotFoundError as _error:
    if _error.name == "keras_tuner":
        raise ImportError(
            "keras_attn.tuning needs KerasTuner, which is not installed: pip install keras-tuner"
        ) from None
    # KerasTuner 1.4 imports `six` without declaring it (TensorFlow brings it along).
    _missing = (_error.name or "").split(".")[0]
    _missing = {"google": "protobuf", "grpc": "grpcio"}.get(_missing, _missing)
    raise ImportError(
        f"keras_attn.tuning needs KerasTuner, which is installed but cannot be imported: "
        f"{_error}. Install what it lacks: pip install {_missing}"
    ) from None

from keras_attn.tuning.hypermodel import ConvAutoencoderHyperModel
from keras_attn.tuning.presets import check_search_settings, model_settings, parse_gates
from keras_attn.tuning.project import check_trials, read_trials, search_record
from keras_attn.tuning.results import (
    protocol_command,
    protocol_data_args,
    top_trials,
    write_results,
)
from keras_attn.tuning.tuner import distributed_role, make_tuner, search

__all__ = [
    "ConvAutoencoderHyperModel",
    "check_search_settings",
    "check_trials",
    "distributed_role",
    "make_tuner",
    "model_settings",
    "parse_gates",
    "protocol_command",
    "protocol_data_args",
    "read_trials",
    "search",
    "search_record",
    "top_trials",
    "write_results",
]
