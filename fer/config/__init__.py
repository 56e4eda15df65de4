"""The run config: one nested dataclass per run (`schema`) and how text becomes one (`parse`).

Defaults, then a YAML/JSON file, then `--set key=value`; the resolved config is saved as
`config.json` in the run folder and inside every checkpoint. Imports only `fer.core`.
"""
from fer.config.parse import apply, flatten, from_dict, load_config, parse_override, parse_value, read_yaml
from fer.config.schema import (AMP_MODES, AugmentConfig, CROPS, ConfigError, DEVICES, DataConfig, FERPLUS_MODES,
                               FIXED_CHOICES, FieldSpec, LABEL_SETS, LossConfig, ModelConfig, OptimConfig, RunConfig,
                               SAMPLERS, SchedConfig, TEST_SPLITS, TrackingConfig, TrainConfig, TransferConfig,
                               VAL_SOURCES, field_specs, field_type, get_field)

__all__ = ["AMP_MODES", "CROPS", "DEVICES", "FERPLUS_MODES", "FIXED_CHOICES", "LABEL_SETS", "SAMPLERS", "TEST_SPLITS",
           "VAL_SOURCES", "AugmentConfig", "ConfigError", "DataConfig", "FieldSpec", "LossConfig", "ModelConfig",
           "OptimConfig", "RunConfig", "SchedConfig", "TrackingConfig", "TrainConfig", "TransferConfig", "apply",
           "field_specs", "field_type", "flatten", "from_dict", "get_field", "load_config", "parse_override",
           "parse_value", "read_yaml"]
