"""The Train page's run form: every config field in plain words, grouped, with presets to start from.

Labels and help come from the config fields themselves (`fer.config.setting`), so the form, the CLI
and the configuration reference say the same thing. Each group shows its everyday fields and keeps
the rest in a "more" expander; every field is in exactly one group (a test checks it).
"""
from typing import Dict, List, Tuple

import streamlit as st

from fer.config import FieldSpec, RunConfig, get_field
from fer.training.validate import config_fields

SKIP = {"runs_dir", "data.path"}  # both come from the sidebar
# (title, shown fields, prefixes of the fields under "more")
GROUPS: List[Tuple[str, List[str], Tuple[str, ...]]] = [
    ("Run", ["name", "train.epochs", "data.limit", "data.test_limit"], ()),
    ("Model", ["model.name", "model.kwargs"], ("model.", "transfer.")),
    ("Optimizer and schedule", ["optim.name", "optim.lr", "sched.name", "loss.label_smoothing"],
     ("optim.", "sched.", "loss.")),
    ("Data and augmentation", ["augmentation", "data.sampler", "loss.class_weights", "data.val_fraction"],
     ("data.", "aug.")),
    ("Learn from a teacher (distillation)", ["distill.teacher", "distill.weight"], ("distill.",)),
    ("Hardware", ["train.device", "train.amp", "train.batch_size", "train.gpus"], ("train.",)),
    ("Tracking", ["tracking.wandb", "tracking.mlflow", "tracking.tensorboard", "tags"], ("tracking.",)),
]


def field_key(key: str) -> str:
    """The widget key of a config field."""
    return f"train_field_{key}"


def form_fields() -> Dict[str, FieldSpec]:
    """The config fields the form edits, by key."""
    return {s.key: s for s in config_fields() if s.key not in SKIP}


def grouped_fields() -> List[Tuple[str, List[str], List[str]]]:
    """Per group: its title, the fields shown, and the fields under "more" (each field once, in schema order)."""
    specs, placed = form_fields(), set()
    for _, shown, _ in GROUPS:
        placed.update(shown)
    groups = []
    for title, shown, prefixes in GROUPS:
        more = [k for k in specs if k not in placed and k.startswith(prefixes)]
        placed.update(more)
        groups.append((title, shown, more))
    return groups


def widget(spec: FieldSpec):
    """One input for a config field in words; lists and mappings are edited as YAML text."""
    key, label = field_key(spec.key), spec.label
    help_text = f"{spec.doc} (`{spec.key}`)" if spec.doc else f"`{spec.key}`"
    if spec.kind == "choice":
        options = list(spec.choices)
        return st.selectbox(label, options, index=options.index(spec.default) if spec.default in options else 0,
                            key=key, help=help_text)
    if spec.kind == "bool":
        return st.checkbox(label, value=spec.default, key=key, help=help_text)
    if spec.kind == "int":
        return int(st.number_input(label, value=int(spec.default), step=1, key=key, help=help_text))
    if spec.kind == "float":
        return float(st.number_input(label, value=float(spec.default), format="%g", key=key, help=help_text))
    if spec.kind == "str":
        return st.text_input(label, value=spec.default, key=key, help=help_text)
    return st.text_input(f"{label} (YAML)", value=spec.text(spec.default), key=key, help=help_text)


def fill_form(cfg: RunConfig) -> None:
    """Put a config's values into the form's widgets (a preset, or a run to edit and relaunch)."""
    for spec in form_fields().values():
        value = get_field(cfg, spec.key)
        st.session_state[field_key(spec.key)] = spec.text(value) if spec.kind == "yaml" else value


def run_form() -> Dict[str, object]:
    """Draw the grouped fields (inside a st.form); the values by config key."""
    specs, values = form_fields(), {}
    for title, shown, more in grouped_fields():
        st.markdown(f"**{title}**")
        cols = st.columns(4)
        for i, key in enumerate(shown):
            with cols[i % 4]:
                values[key] = widget(specs[key])
        if more:
            with st.expander(f"More {title.lower()} settings"):
                cols = st.columns(3)
                for i, key in enumerate(more):
                    with cols[i % 3]:
                        values[key] = widget(specs[key])
    return values
