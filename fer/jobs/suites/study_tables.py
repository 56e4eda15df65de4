"""The study tables: every variant of a study's suites beside what the study reported for it."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import pandas as pd

from fer.config import RunConfig, load_config
from fer.jobs.suites._registry import SUITES
from fer.jobs.suites.study_records import HELD_OUT, STUDIES, Reported


def model_parameters(cfg: RunConfig) -> int:
    """Parameters of the config's model, counted on PyTorch's meta device (no memory, no weights fetched)."""
    import torch  # only here: the suites' listings and reports need no PyTorch

    from fer.models import count_parameters, create_model

    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k not in ("pretrained", "weights_path")}
    with torch.device("meta"):
        return count_parameters(create_model(cfg.model.name, num_classes=7, in_chans=cfg.model.in_chans, **kwargs))


def study_table(key: str, report: Dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every variant of the study's suites, with what the study reported for it beside our suite reports.

    `report` maps a suite name to its `suite_report` frame; a variant the study gave no figure for
    still gets a row (our number, the parameter count), so a ladder reads whole. The gap compares like
    with like: a figure the study measured on validation is compared with our validation accuracy.
    """
    study = STUDIES.get(key)
    reported = {(r.suite, r.variant): r for r in study.reported}
    rows = []
    for suite in study.suites:
        configs = dict(_variant_configs(suite))
        ours = report.get(suite, pd.DataFrame())
        for variant, cfg in configs.items():
            r = reported.get((suite, variant), Reported(suite, variant, variant))
            mine = ours[ours["variant"] == variant] if not ours.empty else ours
            params = model_parameters(cfg)
            if r.extra_over:
                params -= model_parameters(configs[r.extra_over])
            rows.append(_row(r, mine, params))
    table = pd.DataFrame(rows)
    return table.astype({"reported params": "Int64", "ours params": "Int64"})


def _row(r: Reported, mine: pd.DataFrame, params: int) -> Dict[str, Any]:
    """One variant's row: the study's figures, then ours (NaN where no run completed)."""
    def ours(column: str) -> float:
        return float(mine[column].iloc[0]) if len(mine) and column in mine else math.nan

    on_validation = r.split in ("validation", HELD_OUT)  # where the study's figure is our validation split
    same_split = ours("best_val_acc_mean") if on_validation else ours("test_acc_mean")
    return {
        "suite": r.suite, "variant": r.variant, "study's model": r.what,
        "reported acc": r.accuracy if r.accuracy is not None else math.nan,
        "reported on": r.split,
        "reported train acc": r.train_accuracy if r.train_accuracy is not None else math.nan,
        "ours acc": ours("test_acc_mean"), "ours ± std": ours("test_acc_std"),
        "ours val acc": ours("best_val_acc_mean"),
        "gap": same_split - r.accuracy if r.accuracy is not None else math.nan,
        "ours train–val gap": ours("train_val_gap_mean"),
        "runs": int(mine["runs"].iloc[0]) if len(mine) else 0,
        "epochs": int(mine["epochs"].iloc[0]) if len(mine) and not pd.isna(mine["epochs"].iloc[0]) else 0,
        "reported params": r.parameters if r.parameters is not None else math.nan,
        "ours params": params,
        "adapted": str(mine["adapted"].iloc[0]) if len(mine) and "adapted" in mine else "",
    }


def _variant_configs(suite: str) -> List[Tuple[str, RunConfig]]:
    return [(v.name, load_config(None, (), layers=[v.layer])) for v in SUITES.get(suite)(1)]
