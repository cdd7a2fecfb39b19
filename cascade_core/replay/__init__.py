"""Offline evaluation on replayed model outputs: datasets, loaders and metrics.

See `loaders` for the supported file formats (including the generic JSONL format to write
from production logs) and `metrics` for the exact metric definitions.
"""

from .dataset import ReplayDataset, concat_datasets
from .loaders import (
    DATA_ENV_VAR,
    ReplayDataWarning,
    ReplayFormatError,
    default_data_dir,
    load_cascade_log,
    load_cascade_logs,
    load_replay,
    load_replay_jsonl,
    load_routerbench_csv,
    load_routerbench_pickle,
)
from .metrics import (
    CurvePoint,
    Interval,
    apgr,
    auc,
    auc_range,
    bootstrap_ci,
    cpt,
    dataset_auc,
    linear_hull,
    oracle_point,
    single_model_points,
)

__all__ = [
    "DATA_ENV_VAR",
    "CurvePoint",
    "Interval",
    "ReplayDataWarning",
    "ReplayDataset",
    "ReplayFormatError",
    "apgr",
    "auc",
    "auc_range",
    "bootstrap_ci",
    "concat_datasets",
    "cpt",
    "dataset_auc",
    "default_data_dir",
    "linear_hull",
    "load_cascade_log",
    "load_cascade_logs",
    "load_replay",
    "load_replay_jsonl",
    "load_routerbench_csv",
    "load_routerbench_pickle",
    "oracle_point",
    "single_model_points",
]
