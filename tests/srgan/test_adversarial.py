"""Tests for srgan.losses.adversarial: hand-computed objectives and the R1 penalty."""

import math

import pytest
import torch
from torch import nn

from srgan.losses.adversarial import KINDS, AdversarialObjective, r1_penalty

REAL = torch.tensor([[1.0], [3.0]])
FAKE = torch.tensor([[0.0], [-2.0]])


def _bce(logit: float, target: float) -> float:
    """Binary cross-entropy with logits, written out: softplus(x) - t * x."""
    return math.log1p(math.exp(logit)) - target * logit


def _mean_bce(logits: list[float], target: float) -> float:
    return sum(_bce(x, target) for x in logits) / len(logits)


def _objective(kind: str, **kwargs: float) -> AdversarialObjective:
    if kind == "wasserstein":
        kwargs.setdefault("r1_gamma", 1.0)
    return AdversarialObjective(kind, **kwargs)  # type: ignore[arg-type]


def test_bce_losses() -> None:
    objective = AdversarialObjective("bce")
    expected_d = _mean_bce([1.0, 3.0], 1.0) + _mean_bce([0.0, -2.0], 0.0)
    assert objective.discriminator_loss(REAL, FAKE).item() == pytest.approx(expected_d, rel=1e-5)
    expected_g = _mean_bce([0.0, -2.0], 1.0)
    assert objective.generator_loss(FAKE).item() == pytest.approx(expected_g, rel=1e-5)


def test_label_smoothing_shifts_bce_d_loss_by_its_linear_term() -> None:
    hard = AdversarialObjective("bce").discriminator_loss(REAL, FAKE)
    smooth = AdversarialObjective("bce", real_label=0.9).discriminator_loss(REAL, FAKE)
    # BCE(x, t) = softplus(x) - t x, so lowering t by 0.1 adds 0.1 * mean(real).
    assert (smooth - hard).item() == pytest.approx(0.1 * REAL.mean().item(), rel=1e-5)


def test_label_smoothing_leaves_generator_loss() -> None:
    hard = AdversarialObjective("bce").generator_loss(FAKE)
    smooth = AdversarialObjective("bce", real_label=0.9).generator_loss(FAKE)
    assert smooth.item() == pytest.approx(hard.item())


def test_ragan_losses() -> None:
    objective = AdversarialObjective("ragan", real_label=0.9)
    mean_real, mean_fake = 2.0, -1.0
    real_rel = [1.0 - mean_fake, 3.0 - mean_fake]
    fake_rel = [0.0 - mean_real, -2.0 - mean_real]
    expected_d = 0.5 * (_mean_bce(real_rel, 0.9) + _mean_bce(fake_rel, 0.0))
    expected_g = 0.5 * (_mean_bce(real_rel, 0.0) + _mean_bce(fake_rel, 1.0))
    assert objective.discriminator_loss(REAL, FAKE).item() == pytest.approx(expected_d, rel=1e-5)
    assert objective.generator_loss(FAKE, REAL).item() == pytest.approx(expected_g, rel=1e-5)


def test_ragan_generator_needs_real_logits() -> None:
    with pytest.raises(ValueError, match="needs real_logits"):
        AdversarialObjective("ragan").generator_loss(FAKE)


@pytest.mark.parametrize("kind", KINDS)
def test_needs_real_for_generator_only_for_ragan(kind: str) -> None:
    assert _objective(kind).needs_real_for_generator is (kind == "ragan")


def test_hinge_losses() -> None:
    objective = AdversarialObjective("hinge")
    real, fake = torch.tensor([[0.5], [2.0]]), torch.tensor([[-2.0], [0.5]])
    # relu(1 - real) = [0.5, 0], relu(1 + fake) = [0, 1.5]
    assert objective.discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert objective.generator_loss(fake).item() == pytest.approx(0.75)


def test_wasserstein_losses() -> None:
    objective = AdversarialObjective("wasserstein", r1_gamma=10.0)
    assert objective.discriminator_loss(REAL, FAKE).item() == pytest.approx(-1.0 - 2.0)
    assert objective.generator_loss(FAKE).item() == pytest.approx(1.0)


def test_wasserstein_without_gradient_penalty_is_refused() -> None:
    with pytest.raises(ValueError, match="set r1_gamma > 0"):
        AdversarialObjective("wasserstein")


def test_unknown_kind_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"bce.*ragan.*hinge.*wasserstein"):
        AdversarialObjective("lsgan")  # type: ignore[arg-type]


@pytest.mark.parametrize("label", [0.0, -0.5, 1.01])
def test_real_label_out_of_range_is_refused(label: float) -> None:
    with pytest.raises(ValueError, match=r"real_label must be in \(0, 1\]"):
        AdversarialObjective("bce", real_label=label)


def test_negative_r1_gamma_is_refused() -> None:
    with pytest.raises(ValueError, match="r1_gamma"):
        AdversarialObjective("bce", r1_gamma=-1.0)


def test_probabilities_are_detached_mean_sigmoid() -> None:
    logits = torch.tensor([[0.0], [math.log(3.0)]], requires_grad=True)
    prob = AdversarialObjective.probabilities(logits)
    assert prob.item() == pytest.approx((0.5 + 0.75) / 2)
    assert not prob.requires_grad


class LinearCritic(nn.Module):
    """D(x) = sum over (C, H, W) of weight * x, one logit per sample: grad wrt x is weight."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weight * x).flatten(1).sum(dim=1, keepdim=True)


def test_r1_equals_squared_weight_norm_forLinearCritic() -> None:
    torch.manual_seed(0)
    weight = torch.randn(2, 3, 3)
    critic = LinearCritic(weight)
    real = torch.rand(4, 2, 3, 3).requires_grad_(True)
    logits = critic(real)
    norm_sq = weight.pow(2).sum().item()
    assert r1_penalty(real, logits).item() == pytest.approx(norm_sq, rel=1e-5)
    objective = AdversarialObjective("bce", r1_gamma=4.0)
    assert objective.penalty(real, critic(real)).item() == pytest.approx(2.0 * norm_sq, rel=1e-5)


def test_r1_gradient_reaches_discriminator_parameters() -> None:
    torch.manual_seed(0)
    weight = torch.randn(2, 3, 3)
    critic = LinearCritic(weight)
    real = torch.rand(4, 2, 3, 3).requires_grad_(True)
    r1_penalty(real, critic(real)).backward()
    # d ||w||^2 / dw = 2 w: reachable only through create_graph=True.
    assert critic.weight.grad is not None
    assert torch.allclose(critic.weight.grad, 2.0 * weight, rtol=1e-5)


def test_r1_needs_real_requiring_grad() -> None:
    critic = LinearCritic(torch.ones(1, 2, 2))
    real = torch.rand(2, 1, 2, 2)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(real, critic(real))


def test_zero_gamma_penalty_is_zero_without_grads() -> None:
    real = torch.rand(2, 1, 2, 2)
    penalty = AdversarialObjective("hinge").penalty(real, torch.randn(2, 1))
    assert penalty.item() == 0.0
    assert penalty.shape == ()


def test_r1_with_patch_logits() -> None:
    torch.manual_seed(0)
    critic = nn.Conv2d(3, 1, kernel_size=1, bias=False)
    real = torch.rand(2, 3, 4, 5).requires_grad_(True)
    logits = critic(real)
    assert logits.shape == (2, 1, 4, 5)
    # Every pixel's gradient is the 1x1 kernel, so r1 = h * w * ||kernel||^2.
    expected = 4 * 5 * critic.weight.pow(2).sum().item()
    assert r1_penalty(real, logits).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_patch_logits_match_flattened_logits(kind: str) -> None:
    torch.manual_seed(1)
    objective = _objective(kind)
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    d_patch = objective.discriminator_loss(real, fake)
    g_patch = objective.generator_loss(fake, real)
    assert d_patch.shape == () and g_patch.shape == ()
    flat_real, flat_fake = real.reshape(-1, 1), fake.reshape(-1, 1)
    assert d_patch.item() == pytest.approx(
        objective.discriminator_loss(flat_real, flat_fake).item()
    )
    assert g_patch.item() == pytest.approx(objective.generator_loss(flat_fake, flat_real).item())


@pytest.mark.parametrize("kind", KINDS)
def test_generator_gradient_flows_to_fake(kind: str) -> None:
    objective = _objective(kind)
    fake = torch.randn(3, 1, requires_grad=True)
    objective.generator_loss(fake, torch.randn(3, 1)).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
