"""Running and reporting suites: one config per variant × seed, and mean ± std per variant."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import pandas as pd

from fer.config import RunConfig, load_config
from fer.core.text import MAX_TAG_CHARS
from fer.jobs.suites._registry import SUITES
from fer.runs.compare import curves
from fer.runs.store import list_runs


def suite_configs(name: str, repeats: int = 1, epochs: int = 0, overrides: Sequence[str] = (),
                  config_path: Optional[str | Path] = None, variants: Sequence[str] = ()) -> List[RunConfig]:
    """One RunConfig per variant (all, or those named in `variants`) × repeat: defaults → config file →
    variant → `overrides` → `epochs`.

    A study's suite reruns a published ladder, so every `--set` on it is a departure from the study:
    each is tagged `adapted:KEY=VALUE`, and the study tables show it beside the number. Its runs train
    as long as the study's did unless `epochs` (or `--set train.epochs`) says otherwise, which is
    tagged `adapted:train.epochs=N` too.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    base = load_config(config_path, overrides)
    study = SUITES.info(name).get("study")
    adapted = [departure_tag(o) for o in overrides if _departs(o)] if study else []
    if study:
        study_epochs = _study_epochs(study)
        epochs = epochs or (base.train.epochs if any(_key(o) == "train.epochs" for o in overrides) else 0)
        ladder = SUITES.get(name)(epochs or study_epochs)
    else:
        epochs = epochs or base.train.epochs
        ladder = SUITES.get(name)(epochs)
    unknown = sorted(set(variants) - {v.name for v in ladder})
    if unknown:
        raise ValueError(f"suite {name} has no variant {', '.join(unknown)}; its variants: "
                         f"{', '.join(v.name for v in ladder)}")
    configs = []
    for variant in (v for v in ladder if not variants or v.name in variants):
        own = variant.layer.get("train", {}).get("epochs") or (study_epochs if study else epochs)
        length = epochs or own
        shorter = [f"adapted:train.epochs={length}"] if study and length != own else []
        for r in range(repeats):
            seed = base.train.seed + r
            layers = [variant.layer, {"train": {"epochs": length, "seed": seed}}]
            cfg = load_config(config_path, overrides, layers=layers)
            cfg.name = f"{name}-{variant.name}-s{seed}"
            tags = [*base.tags, *variant.layer.get("tags", []), f"suite:{name}", f"variant:{variant.name}",
                    f"seed:{seed}", *adapted, *shorter]
            cfg.tags = list(dict.fromkeys(tags))  # the user's tags, the variant's own, then the suite's
            configs.append(cfg)
    return configs


def _study_epochs(key: str) -> int:
    """How long the study trained its models (a rung's own `train.epochs` wins)."""
    from fer.jobs.suites.study_records import STUDIES

    return STUDIES.get(key).recipe_epochs


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip()


# Settings that change where or how visibly a run happens, never what it learns.
_NOT_DEPARTURES = ("name", "tags", "runs_dir", "data.path", "data.num_workers", "train.device",
                   "train.eval_batch_size", "tracking.")


def _departs(override: str) -> bool:
    key = _key(override)
    return not any(key == k or (k.endswith(".") and key.startswith(k)) for k in _NOT_DEPARTURES)


def _tag(tags: str, key: str) -> Optional[str]:
    for tag in str(tags or "").split(","):
        if tag.startswith(key + ":"):
            return tag[len(key) + 1:]
    return None


def departure_tag(override: str) -> str:
    """`adapted:KEY=VALUE` for one `--set`, fit to be a tag: commas (lists, mappings) become spaces, and a long
    value is cut to the tag limit (the run's config keeps it whole)."""
    tag = "adapted:" + " ".join(override.replace(",", " ").split())
    return tag if len(tag) <= MAX_TAG_CHARS else tag[:MAX_TAG_CHARS - 1] + "…"


def _adaptations(tags: pd.Series) -> str:
    """The `adapted:` tags of a variant's runs (how they depart from the study), joined; '' when none."""
    found = {t[len("adapted:"):] for ts in tags for t in str(ts or "").split(",") if t.startswith("adapted:")}
    return "; ".join(sorted(found))


def suite_runs(name: str, runs_dir: Optional[Path] = None) -> pd.DataFrame:
    """Leaderboard rows of the suite's runs, with `variant` and `seed` columns."""
    df = list_runs(runs_dir)
    if df.empty or "tags" not in df:
        return df.assign(variant=[], seed=[])
    df = df[df["tags"].map(lambda t: _tag(t, "suite") == name)].copy()
    df["variant"] = df["tags"].map(lambda t: _tag(t, "variant"))
    df["seed"] = df["tags"].map(lambda t: _tag(t, "seed"))
    return df


def suite_report(name: str, runs_dir: Optional[Path] = None) -> pd.DataFrame:
    """Mean ± std per variant over completed repeats, best test accuracy first, with the train–val gap."""
    SUITES.get(name)
    df = suite_runs(name, runs_dir)
    columns = ["variant", "runs", "test_acc_mean", "test_acc_std", "test_macro_f1_mean", "best_val_acc_mean",
               "best_val_acc_std", "train_val_gap_mean", "epochs", "train_minutes_mean", "adapted"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df[df["status"] == "completed"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    grouped = df.groupby("variant")
    report = pd.DataFrame({
        "runs": grouped.size(),
        "test_acc_mean": grouped["test_acc"].mean(), "test_acc_std": grouped["test_acc"].std(ddof=1),
        "test_macro_f1_mean": grouped["test_macro_f1"].mean(),
        "best_val_acc_mean": grouped["best_val_acc"].mean(), "best_val_acc_std": grouped["best_val_acc"].std(ddof=1),
        "train_val_gap_mean": grouped["train_val_gap"].mean(),
        "epochs": grouped["epochs_done"].max(),
        "train_minutes_mean": grouped["train_seconds"].mean() / 60,
        "adapted": grouped["tags"].agg(_adaptations),
    }).reset_index()
    order = SUITES.get(name)(1)
    rank = {v.name: i for i, v in enumerate(order)}
    report["_rank"] = report["variant"].map(rank)
    report = report.sort_values(["test_acc_mean", "best_val_acc_mean", "_rank"], ascending=[False, False, True],
                                na_position="last")
    return report.drop(columns="_rank").reset_index(drop=True)[columns]


def suite_curves(name: str, runs_dir: Optional[Path] = None, metrics: Sequence[str] = ("val_acc", "train_acc"),
                 variants: Sequence[str] = ()) -> pd.DataFrame:
    """Mean ± std learning curves per variant over its completed seeds: variant, metric, epoch, mean, std, runs.

    Study C plotted its schedulers' curves over repeats; a band of one standard deviation around the mean
    shows where seeds disagree. An epoch that only some seeds reached (early stopping) averages those.
    """
    df = suite_runs(name, runs_dir)
    columns = ["variant", "metric", "epoch", "mean", "std", "low", "high", "runs"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df[(df["status"] == "completed") & (df["variant"].isin(variants) if variants else True)]
    long = curves(list(df["path"]), labels=dict(zip(df["run_id"], df["variant"])))
    long = long[long["metric"].isin(metrics)]
    if long.empty:
        return pd.DataFrame(columns=columns)
    grouped = long.groupby(["run", "metric", "epoch"])["value"]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0), "runs": grouped.size()})
    out = out.assign(low=out["mean"] - out["std"], high=out["mean"] + out["std"])  # the band's edges
    return out.reset_index().rename(columns={"run": "variant"})[columns]
