"""Tests for srgan.losses.perceptual, using random VGG19 weights written by the tests."""

from pathlib import Path

import pytest
import torch
from torch import nn

from srgan.losses.content import ContentLoss
from srgan.losses.perceptual import (
    LAYER_INDEX,
    PerceptualLoss,
    save_random_vgg19_weights,
    select_rgb_bands,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-style (``features.N.weight``) random VGG19 file, shared by this module."""
    return save_random_vgg19_weights(tmp_path_factory.mktemp("vgg") / "vgg19.pth", seed=0)


@pytest.fixture(scope="module")
def shallow(weights: Path) -> PerceptualLoss:
    return PerceptualLoss(weights, layer="relu2_2")


def _conv_weight(loss: PerceptualLoss, index: int) -> torch.Tensor:
    conv = loss.features[index]
    assert isinstance(conv, nn.Conv2d)
    return conv.weight


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    return path


def test_loads_torchvision_key_style(weights: Path) -> None:
    state = torch.load(weights, weights_only=True)
    loss = PerceptualLoss(weights, layer="relu1_2")
    assert torch.equal(_conv_weight(loss, 2), state["features.2.weight"])


def test_loads_bare_features_key_style(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights, weights_only=True)
    bare = {key.removeprefix("features."): value for key, value in state.items()}
    loss = PerceptualLoss(_save(tmp_path, bare), layer="relu1_2")
    assert torch.equal(_conv_weight(loss, 0), bare["0.weight"])


def test_full_model_state_dict_ignores_classifier(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights, weights_only=True)
    state["classifier.0.weight"] = torch.zeros(2, 2)
    loss = PerceptualLoss(_save(tmp_path, state), layer="relu1_2")
    assert torch.equal(_conv_weight(loss, 0), state["features.0.weight"])


def test_missing_file_says_where_and_that_nothing_downloads(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(FileNotFoundError, match="never downloads") as info:
        PerceptualLoss(missing)
    assert str(missing) in str(info.value)


def test_no_weights_path_is_refused() -> None:
    with pytest.raises(ValueError, match=r"set losses\.perceptual_weights_path"):
        PerceptualLoss(None)


def test_mismatched_keys_are_refused(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights, weights_only=True)
    del state["features.34.weight"]
    state["features.99.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['34.weight'\].*'99.weight'"):
        PerceptualLoss(_save(tmp_path, state))


def test_wrong_shapes_are_refused(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights, weights_only=True)
    state["features.0.weight"] = torch.zeros(64, 4, 3, 3)
    with pytest.raises(ValueError, match="wrong tensor shapes"):
        PerceptualLoss(_save(tmp_path, state))


def test_non_state_dict_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a loadable"):
        PerceptualLoss(path)


def test_unknown_layer_lists_choices(weights: Path) -> None:
    with pytest.raises(ValueError, match=r"relu1_2.*relu5_4"):
        PerceptualLoss(weights, layer="relu9_9")


def test_unknown_criterion_is_refused(weights: Path) -> None:
    with pytest.raises(ValueError, match="'l1', 'l2'"):
        PerceptualLoss(weights, criterion="huber")  # type: ignore[arg-type]


@pytest.mark.parametrize("layer", list(LAYER_INDEX))
def test_only_layers_up_to_choice_are_kept(weights: Path, layer: str) -> None:
    loss = PerceptualLoss(weights, layer=layer)
    assert len(loss.features) == LAYER_INDEX[layer] + 1
    assert isinstance(loss.features[-1], nn.ReLU)


@pytest.mark.parametrize(
    ("channels", "expected"),
    [(1, (0, 0, 0)), (2, (0, 1, 0)), (3, (0, 1, 2)), (4, (2, 1, 0)), (13, (2, 1, 0))],
)
def test_band_selection_rule(channels: int, expected: tuple[int, int, int]) -> None:
    assert select_rgb_bands(channels) == expected


def test_explicit_bands_are_used_and_validated() -> None:
    assert select_rgb_bands(13, bands=[3, 2, 1]) == (3, 2, 1)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        select_rgb_bands(4, bands=[4, 2, 1])
    with pytest.raises(ValueError, match="three indices"):
        select_rgb_bands(4, bands=[0, 1])


def test_constructor_validates_bands(weights: Path) -> None:
    with pytest.raises(ValueError, match="three indices"):
        PerceptualLoss(weights, layer="relu1_2", bands=[0, -1, 2])


def test_multispectral_input_uses_reversed_first_three_bands(shallow: PerceptualLoss) -> None:
    torch.manual_seed(0)
    sr, hr = torch.rand(2, 13, 8, 8), torch.rand(2, 13, 8, 8)
    rgb = [2, 1, 0]
    assert shallow(sr, hr).item() == pytest.approx(shallow(sr[:, rgb], hr[:, rgb]).item())


def test_single_band_is_repeated(shallow: PerceptualLoss) -> None:
    torch.manual_seed(1)
    sr, hr = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    expected = shallow(sr.expand(1, 3, 8, 8), hr.expand(1, 3, 8, 8)).item()
    assert shallow(sr, hr).item() == pytest.approx(expected)


def test_explicit_bands_pick_channels(weights: Path, shallow: PerceptualLoss) -> None:
    torch.manual_seed(2)
    sr, hr = torch.rand(1, 6, 8, 8), torch.rand(1, 6, 8, 8)
    picked = PerceptualLoss(weights, layer="relu2_2", bands=[5, 3, 4])
    assert picked(sr, hr).item() == pytest.approx(
        shallow(sr[:, [5, 3, 4]], hr[:, [5, 3, 4]]).item()
    )
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        PerceptualLoss(weights, layer="relu1_2", bands=[0, 1, 6])(sr, hr)


def test_identical_inputs_give_zero_and_criteria_differ(
    weights: Path, shallow: PerceptualLoss
) -> None:
    torch.manual_seed(3)
    sr, hr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    assert shallow(hr, hr).item() == 0.0
    l2 = PerceptualLoss(weights, layer="relu2_2", criterion="l2")
    assert shallow(sr, hr).item() > 0
    assert l2(sr, hr).item() != pytest.approx(shallow(sr, hr).item())


def test_params_frozen_and_eval_kept_under_parent_train(shallow: PerceptualLoss) -> None:
    parent = ContentLoss(perceptual_weight=1.0, perceptual=shallow)
    parent.train()
    assert parent.training and shallow.training
    assert not shallow.features.training
    assert all(not module.training for module in shallow.features.modules())
    assert all(not p.requires_grad for p in shallow.parameters())


def test_gradient_flows_to_sr_through_deepest_layer(weights: Path) -> None:
    torch.manual_seed(4)
    loss = PerceptualLoss(weights)  # relu5_4
    sr = torch.rand(1, 4, 16, 16, requires_grad=True)
    loss(sr, torch.rand(1, 4, 16, 16)).backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all()
    # Only the three selected bands (2, 1, 0) feed VGG; band 3 gets no gradient.
    assert sr.grad[:, :3].abs().sum() > 0
    assert sr.grad[:, 3].abs().sum() == 0


def test_frozen_features_stay_out_of_checkpoints(weights: Path, shallow: PerceptualLoss) -> None:
    parent = ContentLoss(perceptual_weight=1.0, perceptual=shallow)
    assert not any("features" in key for key in parent.state_dict())
    before = _conv_weight(shallow, 0).clone()
    parent.load_state_dict({}, strict=True)
    assert torch.equal(_conv_weight(shallow, 0), before)


def test_save_random_weights_is_seeded_and_leaves_global_rng(tmp_path: Path) -> None:
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    first = torch.load(save_random_vgg19_weights(tmp_path / "a.pth", seed=3), weights_only=True)
    assert torch.equal(torch.rand(1), expected_next)
    second = torch.load(save_random_vgg19_weights(tmp_path / "b.pth", seed=3), weights_only=True)
    assert torch.equal(first["features.0.weight"], second["features.0.weight"])
