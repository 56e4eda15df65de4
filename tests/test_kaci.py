"""KacıFANN and Momentum-Kacı: the formula, NaN safety on adversarial cases, convergence, AMP, FER training."""
import math

import pytest
import torch

from fer.config import OptimConfig, SchedConfig, load_config
from fer.runs.store import read_metrics
from fer.training.fit import train
from fer.training.kaci import KaciFANN, MomentumKaci
from fer.training.optim import OPTIMIZERS, build_optimizer, build_scheduler

KACI = [KaciFANN, MomentumKaci]


def test_registered_and_built_from_config():
    assert {"kacifann", "momentum_kaci"} <= set(OPTIMIZERS.names())
    opt = build_optimizer([torch.nn.Parameter(torch.ones(2))], OptimConfig(name="momentum_kaci", lr=0.1, alpha=1.5))
    assert isinstance(opt, MomentumKaci) and opt.defaults["alpha"] == 1.5 and opt.defaults["momentum"] == 0.9


def test_one_step_matches_the_formula():
    w0 = torch.tensor([0.5, -0.2, 2.0])
    g = torch.tensor([0.1, 0.3, -0.4])
    p = torch.nn.Parameter(w0.clone())
    p.grad = g.clone()
    alpha, lr, loss, eps = 1.5, 0.1, 1.2, 1e-8
    KaciFANN([p], lr=lr, alpha=alpha, eps=eps, update_clip=10.0).step(loss=loss)
    ref = torch.tensor([0.5, 1.0, 2.0])  # -0.2 is not positive: the initial reference (1.0) is kept
    expected = w0 - lr * ((loss + eps) / (ref + eps)) ** (alpha - 1) * g
    assert torch.allclose(p.detach(), expected, atol=1e-6)


def test_reference_keeps_last_positive_weight():
    p = torch.nn.Parameter(torch.tensor([0.3]))
    opt = KaciFANN([p], lr=1.0, alpha=2.0, update_clip=10.0)
    p.grad = torch.tensor([1.0])  # w: 0.3 → 0.3 − (1/0.3)·1 < 0
    opt.step(loss=1.0)
    assert p.item() < 0 and opt.state[p]["ref"].item() == pytest.approx(0.3)
    before = p.item()
    p.grad = torch.tensor([0.01])
    opt.step(loss=1.0)  # the step uses ref 0.3, not the negative weight
    assert p.item() == pytest.approx(before - (1.0 / 0.3) * 0.01, rel=1e-5)


def test_alpha_one_is_sgd():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(5))
    b.data.copy_(a.data)
    g = torch.randn(5) * 0.1
    a.grad, b.grad = g.clone(), g.clone()
    KaciFANN([a], lr=0.1, alpha=1.0).step(loss=3.0)
    torch.optim.SGD([b], lr=0.1).step()
    assert torch.allclose(a, b)


@pytest.mark.parametrize("cls", KACI)
@pytest.mark.parametrize("case", ["tiny_loss", "huge_loss", "tiny_weights", "negative_weights", "alpha_below_one",
                                  "zero_loss", "huge_gradients"])
def test_no_nan_or_inf_on_adversarial_cases(cls, case):
    torch.manual_seed(0)
    w = {"tiny_weights": torch.full((50,), 1e-30), "negative_weights": -torch.rand(50) * 5}.get(case, torch.randn(50))
    p = torch.nn.Parameter(w.clone())
    alpha = 0.2 if case == "alpha_below_one" else 1.8
    opt = cls([p], lr=0.5, alpha=alpha, update_clip=1.0)
    loss = {"tiny_loss": 1e-30, "huge_loss": 1e30, "zero_loss": 0.0}.get(case, 1.0)
    for _ in range(20):
        p.grad = torch.randn(50) * (1e30 if case == "huge_gradients" else 1.0)
        opt.step(loss=loss)
        assert torch.isfinite(p).all()
    assert (p.detach() - w).abs().max() <= 20 * 0.5 * 1.0 / (1 - 0.9) + 1e-4  # bounded by the update clip


@pytest.mark.parametrize("cls", KACI)
def test_fp16_parameters_and_gradients(cls):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(100).half())
    opt = cls([p], lr=0.1, alpha=1.5)
    for _ in range(10):
        p.grad = (torch.randn(100) * 1e4).half()  # includes inf after the cast
        p.grad[0] = float("nan")
        opt.step(loss=torch.tensor(2.0, dtype=torch.float16))
    assert p.dtype == torch.float16 and torch.isfinite(p).all()


@pytest.mark.parametrize("cls", KACI)
def test_non_finite_loss_skips_the_step_and_counts_it(cls):
    p = torch.nn.Parameter(torch.ones(3))
    opt = cls([p], lr=0.1)
    p.grad = torch.ones(3)
    for bad in (float("nan"), float("inf"), torch.tensor(float("-inf"))):
        opt.step(loss=bad)
    assert opt.skipped_steps == 3 and torch.equal(p.detach(), torch.ones(3))
    with pytest.raises(ValueError, match="needs the loss"):
        opt.step()


@pytest.mark.parametrize("cls,lr", [(KaciFANN, 0.05), (MomentumKaci, 0.01)])
def test_converges_on_least_squares(cls, lr):
    torch.manual_seed(0)
    a = torch.randn(64, 8)
    w_true = torch.randn(8)
    b = a @ w_true
    w = torch.nn.Parameter(torch.zeros(8))
    opt = cls([w], lr=lr, alpha=1.2)
    first = None
    for _ in range(600):
        loss = ((a @ w - b) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step(loss=loss.detach())
    assert loss.item() < 1e-3 * first
    assert torch.allclose(w.detach(), w_true, atol=0.05)


@pytest.mark.parametrize("cls", KACI)
def test_works_with_grad_scaler_and_closure(cls):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = cls(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    losses = []
    for _ in range(30):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt, loss=loss.detach())
        scaler.update()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and all(math.isfinite(v) for v in losses)

    def closure():
        opt.zero_grad()
        out = torch.nn.functional.cross_entropy(model(x), y)
        out.backward()
        return out

    assert torch.isfinite(opt.step(closure))


def test_onecycle_cycles_momentum_only_where_there_is_one():
    p = [torch.nn.Parameter(torch.ones(1))]
    plain = KaciFANN(p, lr=0.1)
    build_scheduler(plain, SchedConfig(name="onecycle"), 2, 5)
    assert "momentum" not in plain.param_groups[0]  # KacıFANN must not turn into Momentum-Kacı
    mom = MomentumKaci([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    build_scheduler(mom, SchedConfig(name="onecycle"), 2, 5)
    assert mom.param_groups[0]["momentum"] == pytest.approx(0.95)  # OneCycle starts at max momentum


@pytest.mark.slow
@pytest.mark.parametrize("name,lr", [("kacifann", 0.3), ("momentum_kaci", 0.05)])
def test_short_fer_training_reduces_the_loss(fer_root, tmp_path, name, lr, tiny_overrides):
    cfg = load_config(None, tiny_overrides(fer_root, tmp_path, 4, f"optim.name={name}", f"optim.lr={lr}",
                                           "data.limit=2000", "sched.name=none", "augmentation=none",
                                           "train.amp=off"))
    run = train(cfg)
    metrics = read_metrics(run)
    print(metrics[["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]].to_string())
    # 2,000 real faces, 4 epochs: the loss must fall well below chance level (ln 7 ≈ 1.95) and its start.
    assert metrics["train_loss"].iloc[-1] < min(1.85, metrics["train_loss"].iloc[0] - 0.04)
    assert metrics["val_acc"].max() > 0.25  # above the majority class (happy, ~25%)
    assert metrics["skipped_steps"].iloc[-1] == 0 and metrics["train_loss"].notna().all()
