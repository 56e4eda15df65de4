"""Several trained nets as one model: the log of the mean of their calibrated probabilities.

`fer ensemble RUN RUN …` (fer.training.ensemble) fills one with the members' weights and saves it as an
ordinary checkpoint, so every page, command, export and evaluation treats an ensemble like any other
run. Each member's probabilities are calibrated by its own temperature (fitted on validation without
test-time augmentation) before they are averaged; the output is a log-probability, so it serves as the
logits the rest of the product expects, and the ensemble's own temperature (per TTA mode, fitted on
validation) calibrates it as used.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn

from fer.models._registry import create_model, register_model

MAX_MEMBERS = 8


class AveragedEnsemble(nn.Module):
    """log mean_k softmax(member_k(x) / T_k): an ensemble of calibrated members as one module."""

    def __init__(self, members: Sequence[nn.Module], temperatures: Sequence[float]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        # Not in the state dict: the temperatures are part of the model's description (its kwargs).
        self.register_buffer("inverse_temperatures", torch.tensor([1.0 / t for t in temperatures]),
                             persistent=False)
        self.cam_layer = f"members.0.{members[0].cam_layer}"  # Grad-CAM explains the first member
        self.head_name = f"members.0.{members[0].head_name}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = [torch.log_softmax(member(x) * self.inverse_temperatures[i], dim=1)
                     for i, member in enumerate(self.members)]
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(self.members))


def _member_specs(members: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    if not 1 <= len(members) <= MAX_MEMBERS:
        raise ValueError(f"an ensemble has 1 to {MAX_MEMBERS} members, got {len(members)}")
    specs = []
    for spec in members:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or spec["name"] == "ensemble":
            raise ValueError("each ensemble member is {name: a registered model other than ensemble, kwargs: {...}}")
        kwargs = spec.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ValueError(f"member {spec['name']!r}: kwargs must be a mapping")
        specs.append({"name": spec["name"], "kwargs": kwargs})
    return specs


@register_model("ensemble")
def ensemble(num_classes: int = 7, in_chans: int = 1, members: Sequence[Dict[str, Any]] = (),
             temperatures: Sequence[float] = (), runs: Sequence[str] = ()) -> AveragedEnsemble:
    """An ensemble of registered models (default: two plain CNNs, as a shape to fill with trained weights).

    `runs` names the trained runs the members come from: provenance only, the weights are in the checkpoint."""
    specs = _member_specs(members or [{"name": "plain_cnn"}, {"name": "plain_cnn"}])
    temperatures = list(temperatures) or [1.0] * len(specs)
    if len(temperatures) != len(specs) or not all(0 < float(t) <= 100 for t in temperatures):
        raise ValueError("an ensemble needs one temperature in (0, 100] per member")
    nets = [create_model(s["name"], num_classes=num_classes, in_chans=in_chans, **s["kwargs"]) for s in specs]
    return AveragedEnsemble(nets, [float(t) for t in temperatures])
