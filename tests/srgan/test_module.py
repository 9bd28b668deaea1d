"""The SRGAN step: phases on the exact iteration, logged keys, frozen D in pretraining, EMA, LRs."""

import math

import pytest
import torch

from srgan.module import SRGANModule
from srgan.train import fit

DESIGN_KEYS = {
    "training/pretrain_phase",
    "training/adv_loss_weight",
    "generator/content_loss",
    "generator/adversarial_loss",
    "generator/total_loss",
    "discriminator/adversarial_loss",
    "discriminator/D(y)_prob",
    "discriminator/D(G(x))_prob",
    "discriminator/r1_penalty",
    "lr/generator",
    "lr/discriminator",
    "ema/active",
    "train_metrics/l1",
    "train_metrics/psnr",
}
VAL_KEYS = {f"val_metrics/{m}" for m in ("l1", "psnr", "ssim", "sam", "ergas")}


def test_phase_switch_and_ramp_land_on_the_right_batch(make_config, datamodule, recorder, tmp_path):
    cfg = make_config()
    result = fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    steps = recorder.steps
    assert result.iteration == 10 and len(steps) == 10
    phase = [s["training/pretrain_phase"] for s in steps]
    assert phase == [1.0, 1.0, 1.0] + [0.0] * 7
    weights = [s["training/adv_loss_weight"] for s in steps]
    beta = cfg.losses.adv_weight
    expected = (
        [0.0] * 3
        + [beta * 0.5 * (1 - math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)]
        + [beta] * 3
    )
    assert weights == pytest.approx(expected)
    # global_step counts optimizer steps: one per pretraining batch, two per adversarial batch
    assert recorder.global_steps[-1] == 3 + 2 * 7
    assert [s["training/iteration"] for s in steps] == [float(i) for i in range(10)]


def test_logged_keys(make_config, datamodule, recorder, tmp_path):
    result = fit(make_config(), datamodule, tmp_path, callbacks=[recorder])
    assert set(recorder.steps[-1]) >= DESIGN_KEYS
    assert set(result.metrics) >= VAL_KEYS
    for key in VAL_KEYS:
        bicubic = key.replace("val_metrics/", "val_metrics/bicubic_")
        assert bicubic in result.metrics and f"{key}_gain" in result.metrics
    pre = recorder.steps[0]
    assert pre["discriminator/adversarial_loss"] == 0.0 and pre["discriminator/D(y)_prob"] == 0.0
    adv = recorder.steps[-1]
    assert adv["discriminator/adversarial_loss"] > 0 and 0 < adv["discriminator/D(y)_prob"] < 1


def test_discriminator_untouched_while_pretraining(make_config, datamodule, tmp_path):
    cfg = make_config(schedule={"pretrain_iterations": 5, "max_iterations": 5})
    torch.manual_seed(0)
    initial = SRGANModule(cfg).discriminator.state_dict()
    result = fit(cfg, datamodule, tmp_path, final_validation=False)
    module = SRGANModule.load_from_checkpoint(result.last_checkpoint, weights_only=True)
    for key, value in module.discriminator.state_dict().items():
        assert torch.equal(value, initial[key]), key
    generator_changed = any(
        not torch.equal(v, SRGANModule(cfg).generator.state_dict()[k])
        for k, v in module.generator.state_dict().items()
    )
    assert generator_changed


def test_ema_starts_at_configured_iteration(make_config, datamodule, recorder, tmp_path):
    fit(
        make_config(ema={"start_iteration": 6}),
        datamodule,
        tmp_path,
        callbacks=[recorder],
        final_validation=False,
    )
    assert [s["ema/active"] for s in recorder.steps] == [0.0] * 6 + [1.0] * 4


def test_ema_weights_trail_the_generator(make_config, datamodule, tmp_path):
    result = fit(make_config(), datamodule, tmp_path, final_validation=False)
    module = SRGANModule.load_from_checkpoint(result.last_checkpoint, weights_only=True)
    assert module.ema is not None and module.ema.active
    assert int(module.ema.averaged.n_averaged) == 10 - 2
    ema_w = module.ema.module.state_dict()
    live_w = module.generator.state_dict()
    assert any(
        not torch.equal(ema_w[k], live_w[k]) for k in live_w if live_w[k].is_floating_point()
    )
    assert module.inference_generator() is module.ema.module


def test_ema_disabled(make_config, datamodule, recorder, tmp_path):
    fit(
        make_config(ema={"enabled": False}),
        datamodule,
        tmp_path,
        callbacks=[recorder],
        final_validation=False,
    )
    assert all(s["ema/active"] == 0.0 for s in recorder.steps)


def test_generator_lr_warmup_curve(make_config, datamodule, recorder, tmp_path):
    cfg = make_config(optim={"generator": {"lr": 0.01, "warmup_iterations": 4}})
    fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    lrs = [s["lr/generator"] for s in recorder.steps]
    assert lrs == pytest.approx([0.0025, 0.005, 0.0075] + [0.01] * 7)


def test_plateau_reduces_lr_after_validation(make_config, datamodule, recorder, tmp_path):
    # patience 0 and a metric that cannot improve twice in a row with lr this high
    cfg = make_config(
        optim={
            "generator": {
                "lr": 0.05,
                "plateau_patience": 0,
                "plateau_factor": 0.5,
                "warmup_iterations": 0,
            },
            "discriminator": {"lr": 0.01, "plateau_patience": 0, "plateau_factor": 0.1},
        },
        validation={"every_n_iterations": 2},
        schedule={"max_iterations": 12},
    )
    fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    g = [s["lr/generator"] for s in recorder.steps]
    d = [s["lr/discriminator"] for s in recorder.steps]
    assert g[0] == pytest.approx(0.05) and min(g) < 0.05
    assert set(round(x / 0.05, 6) for x in g) <= {0.5**k for k in range(10)}
    assert min(d) < 0.01


@pytest.mark.parametrize("objective", ["bce", "ragan", "hinge", "wasserstein"])
def test_each_objective_trains_with_r1(objective, make_config, datamodule, recorder, tmp_path):
    cfg = make_config(
        losses={"adversarial": objective, "r1_gamma": 1.0}, schedule={"max_iterations": 5}
    )
    fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    assert recorder.steps[-1]["discriminator/r1_penalty"] > 0


def test_gradient_clipping_limits_norm_of_both_networks(make_config, datamodule, tmp_path):
    cfg = make_config(
        optim={
            "generator": {"grad_clip_norm": 1e-3, "lr": 1.0},
            "discriminator": {"grad_clip_norm": 2e-3, "lr": 1.0},
        },
        schedule={"pretrain_iterations": 1, "max_iterations": 3},
    )
    module = SRGANModule(cfg)
    g_params = {id(p) for p in module.generator.parameters()}
    seen: dict[str, list[float]] = {"generator": [], "discriminator": []}
    original = module.clip_gradients

    def clip(optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        original(
            optimizer,
            gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm,
        )
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        net = "generator" if id(params[0]) in g_params else "discriminator"
        seen[net].append(float(norm))

    module.clip_gradients = clip  # type: ignore[method-assign]
    from srgan.train import build_trainer

    trainer, _ = build_trainer(cfg, tmp_path)
    trainer.fit(module, datamodule=datamodule)
    # one pretraining batch (G only), then two adversarial batches (D and G)
    assert len(seen["generator"]) == 3 and len(seen["discriminator"]) == 2
    assert max(seen["generator"]) <= 1e-3 * 1.01
    assert max(seen["discriminator"]) <= 2e-3 * 1.01


def test_rerun_of_a_finished_run_trains_no_further(make_config, datamodule, recorder, tmp_path):
    cfg = make_config(schedule={"max_iterations": 6})
    first = fit(cfg, datamodule, tmp_path, final_validation=False)
    assert first.iteration == 6
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=True)["state_dict"]

    again = fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    assert again.iteration == 6 and recorder.steps == []
    after = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_discriminator_warmup_starts_with_its_first_step(
    make_config, datamodule, recorder, tmp_path
):
    cfg = make_config(optim={"discriminator": {"lr": 0.01, "warmup_iterations": 2}})
    fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    lrs = [s["lr/discriminator"] for s in recorder.steps]
    # pretraining is 3 batches: D's LR stays at the first warm-up value until D trains
    assert lrs == pytest.approx([0.005] * 4 + [0.01] * 6)


def test_discriminator_plateau_waits_for_adversarial_training(
    make_config, datamodule, recorder, tmp_path
):
    cfg = make_config(
        optim={"discriminator": {"lr": 0.01, "plateau_patience": 0, "plateau_factor": 0.1}},
        schedule={"pretrain_iterations": 8, "max_iterations": 10},
        validation={"every_n_iterations": 2},
    )
    fit(cfg, datamodule, tmp_path, callbacks=[recorder], final_validation=False)
    # four validations during pretraining could each cut D's LR; D must start at its full LR
    assert recorder.steps[8]["lr/discriminator"] == pytest.approx(0.01)


def test_runtime_checks_are_logged(make_config, datamodule, tmp_path, caplog):
    import lightning

    caplog.set_level("INFO", logger="srgan.module")
    fit(make_config(), datamodule, tmp_path, final_validation=False)
    text = caplog.text
    assert f"Lightning {lightning.__version__}, manual optimization" in text
    assert "pretraining until 3" in text and "EMA from iteration 2" in text
    assert "iteration 3: pretraining done, adversarial training starts" in text
    assert "iteration 2: EMA of the generator starts" in text


def test_resumed_run_keeps_its_logs_and_validation_history(make_config, datamodule, tmp_path):
    import csv

    first = fit(make_config(schedule={"max_iterations": 5}), datamodule, tmp_path)
    assert [row["iteration"] for row in first.metric_history] == [5.0]
    again = fit(make_config(schedule={"max_iterations": 10}), datamodule, tmp_path)
    assert again.resumed_from is not None
    # the history before the resume travelled in the checkpoint
    assert [row["iteration"] for row in again.metric_history] == [5.0, 10.0]
    assert all(r["val_metrics/l1"] > 0 for r in again.metric_history)

    with (tmp_path / "logs" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    iterations = {float(r["training/iteration"]) for r in rows if r.get("training/iteration")}
    assert iterations == {float(i) for i in range(10)}  # both attempts' rows are kept
