import math

import pytest

from srgan.schedules import adversarial_weight, is_pretraining, warmup_factor


def test_pretraining_gate_switches_on_exact_iteration():
    assert [is_pretraining(i, 3) for i in range(5)] == [True, True, True, False, False]
    assert not is_pretraining(0, 0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ramp_starts_after_pretraining_and_reaches_beta(kind):
    beta, pre, ramp = 0.01, 5, 4
    weights = [adversarial_weight(i, pre, ramp, beta, kind) for i in range(12)]
    assert weights[:5] == [0.0] * 5
    assert 0 < weights[5] < weights[6] < weights[7] < weights[8]
    assert weights[8] == pytest.approx(beta)
    assert weights[9:] == [pytest.approx(beta)] * 3


def test_ramp_values():
    assert adversarial_weight(5, 5, 4, 1.0, "linear") == pytest.approx(0.25)
    assert adversarial_weight(6, 5, 4, 1.0, "linear") == pytest.approx(0.5)
    assert adversarial_weight(5, 5, 4, 1.0, "cosine") == pytest.approx(
        0.5 * (1 - math.cos(math.pi / 4))
    )
    assert adversarial_weight(6, 5, 4, 1.0, "cosine") == pytest.approx(0.5)


def test_no_ramp_jumps_to_beta():
    assert adversarial_weight(2, 2, 0, 0.3, "linear") == 0.3
    assert adversarial_weight(1, 2, 0, 0.3, "linear") == 0.0


def test_warmup_factor():
    assert [warmup_factor(i, 4, "linear") for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(1, 4, "cosine") == pytest.approx(0.5)
    assert warmup_factor(0, 0, "linear") == 1.0


def test_unknown_ramp_refused():
    with pytest.raises(ValueError, match="cosine, linear"):
        adversarial_weight(3, 0, 4, 1.0, "step")  # type: ignore[arg-type]
