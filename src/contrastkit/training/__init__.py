"""Training: typed config, the loop, checkpoints, logging and callbacks.

``load_config(path, overrides)`` builds a :class:`Config`; ``train(config)``
runs it and returns a :class:`TrainResult`. The CLI ``contrastkit train
CONFIG.yaml key=value ...`` calls the same two functions.
"""

from contrastkit.training.callbacks import Callback, CallbackContext, StopTraining
from contrastkit.training.config import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    ScaleConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from contrastkit.training.guard import TrainingDivergedError
from contrastkit.training.loop import Trainer, TrainResult, train

__all__ = [
    "Callback",
    "CallbackContext",
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "ScaleConfig",
    "StopTraining",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "dump_config",
    "load_config",
    "train",
]
