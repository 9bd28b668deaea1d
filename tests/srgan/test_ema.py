"""GeneratorEMA: the averaging rule with and without the num-updates warm-up."""

import pytest
import torch
from torch import nn

from srgan.ema import GeneratorEMA


def _trajectory(warmup: bool, decay: float = 0.99) -> list[float]:
    net = nn.Linear(1, 1, bias=False)
    ema = GeneratorEMA(net, decay=decay, warmup=warmup)
    values = []
    for value in (1.0, 3.0, 5.0, 7.0):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update(net)
        values.append(float(ema.module.weight))
    return values


def _expected(warmup: bool, decay: float = 0.99) -> list[float]:
    ema, out = 1.0, [1.0]  # the first update copies the live weights
    for n, value in enumerate((3.0, 5.0, 7.0), start=1):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        ema = d * ema + (1 - d) * value
        out.append(ema)
    return out


@pytest.mark.parametrize("warmup", [False, True])
def test_average_follows_the_documented_rule(warmup):
    assert _trajectory(warmup) == pytest.approx(_expected(warmup), rel=1e-6)


def test_warmup_tracks_the_weights_faster_early_on():
    # with decay 0.99 the plain average barely moves; the warm-up uses 2/11, 3/12, 4/13
    plain, warm = _trajectory(False), _trajectory(True)
    assert plain[-1] < 1.2 and warm[-1] > 4.0


def test_batch_norm_statistics_are_averaged_and_its_counter_follows():
    """Float buffers (running mean) are averaged like weights; integer buffers (the batch
    counter) are copied from the live network. Shown failing by mutation testing: no test had a
    network with an integer buffer, so the copying branch never ran."""
    net = nn.BatchNorm2d(1, momentum=1.0)  # running mean = the last batch's mean
    ema = GeneratorEMA(net, decay=0.5)
    for mean in (2.0, 4.0):
        net.train()(torch.full((1, 1, 2, 2), mean))
        ema.update(net)
    assert float(ema.module.running_mean) == pytest.approx(0.5 * 2.0 + 0.5 * 4.0)
    assert int(ema.module.num_batches_tracked) == int(net.num_batches_tracked) == 2


def test_calling_the_ema_runs_the_averaged_generator():
    net = nn.Linear(2, 1)
    ema = GeneratorEMA(net, decay=0.5)
    ema.update(net)
    with torch.no_grad():
        net.weight.fill_(9.0)  # the live network moves on; the average does not
    x = torch.ones(3, 2)
    assert torch.equal(ema(x), ema.module(x))
    assert torch.equal(ema(input=x), ema.module(x))  # keyword arguments reach it too
    assert not torch.equal(ema(x), net(x))


def test_defaults_update_from_the_first_iteration_without_warmup():
    net = nn.Linear(1, 1, bias=False)
    ema = GeneratorEMA(net, decay=0.99)
    assert ema.should_update(0)
    for value in (1.0, 3.0, 5.0, 7.0):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update(net)
    assert float(ema.module.weight) == pytest.approx(_expected(False)[-1], rel=1e-6)


def test_the_average_is_never_trained():
    ema = GeneratorEMA(nn.Linear(2, 1), decay=0.5)
    assert not any(p.requires_grad for p in ema.parameters())
