"""Res3D-GRU-3: GRU gate arithmetic against a hand computation, shapes at paper scale, view
order, the loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stages.models.r2n2 import R2N2Config, Res3DGRU3, occupancy_probability, r2n2_loss, unpool3d

# A model whose GRU state is 1 channel on a 2^3 grid, fed 2 features.
TINY = R2N2Config(
    input_size=16,
    encoder_channels=(2, 2),
    encoder_shortcuts=("none", "identity"),
    first_kernel=3,
    fc_features=2,
    hidden_channels=1,
    grid=2,
    decoder_channels=(2,),
    decoder_shortcuts=("conv",),
    resolution=4,
)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def set_gate(gate, kernel_value, fc_rows, bias):
    with torch.no_grad():
        gate.conv.weight.fill_(kernel_value)
        gate.fc.weight.copy_(torch.tensor(fc_rows, dtype=torch.float64))
        gate.bias.fill_(bias)


def test_gru_step_matches_a_hand_computation():
    model = Res3DGRU3(TINY).double()
    # On a 2^3 grid every voxel's 3^3 neighbourhood holds all 8 voxels, so a convolution whose
    # kernel is all k gives k * (sum of the grid) everywhere.
    fc = {name: np.arange(16, dtype=np.float64).reshape(8, 2) * s for name, s in (("u", 0.05), ("r", -0.03), ("c", 0.02))}
    set_gate(model.update_gate, 0.1, fc["u"], 0.2)
    set_gate(model.reset_gate, -0.2, fc["r"], 0.1)
    set_gate(model.candidate, 0.3, fc["c"], -0.4)
    x = np.array([0.5, -1.0])
    h = np.linspace(-1, 1, 8)  # the state, flattened [z, y, x]

    u = sigmoid(0.1 * h.sum() + fc["u"] @ x + 0.2)
    r = sigmoid(-0.2 * h.sum() + fc["r"] @ x + 0.1)
    c = np.tanh(0.3 * (r * h).sum() + fc["c"] @ x - 0.4)
    expected = u * h + (1 - u) * c

    state = torch.tensor(h).view(1, 1, 2, 2, 2)
    with torch.no_grad():
        out = model.gru_step(torch.tensor(x).view(1, 2), state)
        zero = model.gru_step(torch.tensor(x).view(1, 2), model.initial_state(1, dtype=torch.float64))
    assert out.shape == (1, 1, 2, 2, 2)
    assert np.allclose(out.flatten().numpy(), expected, rtol=0, atol=1e-12)
    # From the zero state the update keeps nothing: state' = (1 - u) * tanh(fc(x) + b).
    u0 = sigmoid(fc["u"] @ x + 0.2)
    assert np.allclose(zero.flatten().numpy(), (1 - u0) * np.tanh(fc["c"] @ x - 0.4), atol=1e-12)


def test_paper_scale_layers():
    config = R2N2Config()
    assert config.encoder_output_size == 3  # 127 -> 64 -> 33 -> 17 -> 9 -> 5 -> 3
    model = Res3DGRU3(config)
    assert model.fc.weight.shape == (1024, 256 * 3 * 3)
    for gate in (model.update_gate, model.reset_gate, model.candidate):
        assert gate.conv.weight.shape == (128, 128, 3, 3, 3)
        assert gate.fc.weight.shape == (128 * 4**3, 1024)
    assert [b.conv_b.out_channels for b in model.encoder] == [96, 128, 256, 256, 256, 256]
    assert [b.conv_b.out_channels for b in model.decoder] == [128, 128, 64, 32]
    assert model.classifier.out_channels == 2


@pytest.fixture(scope="module")
def narrow():
    """Paper-scale GRU state (128 x 4^3) and output (2 x 32^3) behind a narrow encoder."""
    torch.manual_seed(0)
    config = R2N2Config(
        encoder_channels=(4, 4, 8, 8, 8, 8),
        fc_features=32,
        decoder_channels=(8, 8, 4, 4),
        decoder_shortcuts=("conv", "identity", "conv", "mid"),
    )
    return Res3DGRU3(config).eval()


@pytest.mark.parametrize("views", [1, 2, 3, 4, 5])
def test_one_to_five_views(narrow, views):
    batch = torch.rand(2, views, 3, 127, 127)
    with torch.no_grad():
        state = narrow.aggregate(batch)
        logits = narrow(batch)
    assert state.shape == (2, 128, 4, 4, 4)
    assert logits.shape == (2, 2, 32, 32, 32)
    assert torch.isfinite(logits).all()


def test_small_preset_trains_a_step():
    torch.manual_seed(0)
    model = Res3DGRU3(R2N2Config.small())
    views, voxels = torch.rand(2, 2, 3, 127, 127), (torch.rand(2, 32, 32, 32) > 0.9).long()
    loss = r2n2_loss(model(views), voxels)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(views[:1, :1]).shape == (1, 2, 32, 32, 32)


def test_views_are_consumed_in_order(narrow):
    views = torch.rand(1, 3, 3, 127, 127)
    with torch.no_grad():
        features = narrow.encode(views)
        state = narrow.initial_state(1)
        for v in range(3):
            state = narrow.gru_step(features[:, v], state)
        assert torch.allclose(narrow.aggregate(views), state)
        assert not torch.allclose(narrow.aggregate(views.flip(1)), state)


def test_unpooling_inserts_zeros():
    x = torch.arange(8.0).view(1, 1, 2, 2, 2)
    out = unpool3d(x)
    assert out.shape == (1, 1, 4, 4, 4)
    assert torch.equal(out[:, :, ::2, ::2, ::2], x)
    assert out.sum() == x.sum() and (out != 0).sum() == 7


def test_loss_is_the_mean_voxel_cross_entropy():
    logits = torch.tensor([[0.0, 2.0, -1.0, 0.5], [1.0, -1.0, -1.0, 3.0]]).view(1, 2, 1, 2, 2)
    voxels = torch.tensor([0, 1, 0, 1]).view(1, 1, 2, 2)
    pairs = [(0.0, 1.0), (2.0, -1.0), (-1.0, -1.0), (0.5, 3.0)]
    expected = 0.0
    for (empty, occupied), label in zip(pairs, [0, 1, 0, 1]):
        chosen = occupied if label else empty
        expected += math.log(math.exp(empty) + math.exp(occupied)) - chosen
    assert r2n2_loss(logits, voxels).item() == pytest.approx(expected / 4, abs=1e-6)
    probability = occupancy_probability(logits)
    assert probability.shape == (1, 1, 2, 2)
    assert probability.flatten()[0].item() == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_config_round_trip_and_checks():
    from dataclasses import asdict

    from stages.model_spec import ModelConfigError, parse_section

    small = R2N2Config.small()
    assert parse_section(R2N2Config, asdict(small), "r2n2.yaml", "network") == small
    assert parse_section(R2N2Config, {"decoder_channels": [128, 128, 64, 32]}, "r2n2.yaml", "network") == R2N2Config()
    with pytest.raises(ModelConfigError, match="r2n2.yaml: unknown key network.hidden"):
        parse_section(R2N2Config, {"hidden": 3}, "r2n2.yaml", "network")
    with pytest.raises(ValueError, match="resolution"):
        R2N2Config(decoder_channels=(8, 8), decoder_shortcuts=("conv", "conv"))
    with pytest.raises(ValueError, match="identity"):
        R2N2Config(decoder_channels=(8, 8, 4, 4))


def test_a_few_steps_learn_a_fixed_target():
    torch.manual_seed(0)
    config = R2N2Config(
        input_size=16,
        encoder_channels=(4, 4),
        encoder_shortcuts=("none", "conv"),
        fc_features=8,
        hidden_channels=4,
        decoder_channels=(4,),
        decoder_shortcuts=("identity",),
        resolution=8,
    )
    model = Res3DGRU3(config)
    views = torch.rand(2, 2, 3, 16, 16)
    target = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6, 2:6] = 1
    optimiser = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = r2n2_loss(model(views), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
