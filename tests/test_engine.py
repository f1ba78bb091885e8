"""The fast recurrent engine computes what sb3-contrib's stock policy computes.

Short training episodes put episode starts in most minibatches, which is exactly where the
stock policy falls back to its per-timestep loop and the engine does not; minibatches that
span several accounts' rollouts carry padding, which the engine skips.
"""

from __future__ import annotations

import pytest
import torch
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.callbacks import BaseCallback

from rltrader.env import VecTradingEnv
from rltrader.training import engine
from rltrader.training.engine import (
    SEQUENCE_LENGTHS,
    FusedLstmPolicy,
    FusedRecurrentPPO,
    SequenceLengthRolloutBuffer,
    single_step,
)

POLICY_KWARGS = {"lstm_hidden_size": 32, "net_arch": {"pi": [32], "vf": [32]}}


@pytest.fixture(scope="module")
def short_episode_env(prepared_sample, prepared_market):
    _, config = prepared_sample
    env_config = config.env.model_copy(update={"episode_length": 40})
    return lambda: VecTradingEnv(prepared_market, "train", env_config, 4)


def _model(policy, env, seed=3, **kwargs):
    algorithm = RecurrentPPO if policy == "MlpLstmPolicy" else FusedRecurrentPPO
    return algorithm(policy, env, n_steps=64, batch_size=64, n_epochs=2, seed=seed, device="cpu",
                        policy_kwargs=POLICY_KWARGS, **kwargs)


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).detach().norm() / theirs.detach().norm().clamp_min(1e-30))


@pytest.fixture(scope="module")
def filled_buffer(short_episode_env):
    """A stock model whose (stock) buffer is full; the engine's buffer view of the same data."""
    stock = _model("MlpLstmPolicy", short_episode_env())
    stock.learn(256)  # fills the rollout buffer
    return stock


def _engine_view(buffer):
    """The same buffer object read through the engine's subclass: same minibatches plus lengths."""
    view = SequenceLengthRolloutBuffer.__new__(SequenceLengthRolloutBuffer)
    view.__dict__ = buffer.__dict__
    return view


def _masked(tensor, mask):
    return tensor.flatten()[mask]


def test_minibatches_with_episode_starts_give_the_same_outputs_and_gradients(filled_buffer):
    """Whole policy, float32: within 1e-5 relative (the kernels sum in different orders)."""
    stock = filled_buffer
    fused = FusedLstmPolicy(stock.observation_space, stock.action_space, lambda _: 1e-3, **POLICY_KWARGS)
    fused.load_state_dict(stock.policy.state_dict())
    batches_with_starts = padded_batches = 0
    for batch in _engine_view(stock.rollout_buffer).get(64):
        batches_with_starts += bool(batch.episode_starts.any())
        mask = batch.mask > 0
        padded_batches += bool((~mask).any())
        outputs = []
        for policy in (stock.policy, fused):
            policy.zero_grad()
            values, log_prob, entropy = policy.evaluate_actions(
                batch.observations, batch.actions.long().flatten(), batch.lstm_states, batch.episode_starts)
            # as in RecurrentPPO.train: every loss term sees the real steps only
            (_masked(values, mask).sum() + _masked(log_prob, mask).sum() + _masked(entropy, mask).sum()).backward()
            outputs.append([_masked(values, mask), _masked(log_prob, mask), _masked(entropy, mask),
                            *(p.grad.clone() for p in policy.parameters())])
        for ours, theirs in zip(outputs[1], outputs[0], strict=True):
            assert _relative_error(ours, theirs) < 1e-5
    assert batches_with_starts >= 2 and padded_batches >= 2


def test_in_double_precision_the_sequence_pass_is_the_same_computation(filled_buffer):
    """The LSTM pass alone in float64 on real minibatches: equal to 1e-10, outputs and gradients."""
    stock = filled_buffer
    unpadded = 0
    for batch in _engine_view(stock.rollout_buffer).get(64):
        lengths = getattr(batch.episode_starts, SEQUENCE_LENGTHS)
        mask = batch.mask > 0
        assert int(lengths.sum()) == int(mask.sum())
        unpadded += int(lengths.min()) < int(lengths.max())
        features = stock.policy.extract_features(batch.observations, stock.policy.pi_features_extractor)
        features = features.detach().double()
        states = tuple(t.double() for t in batch.lstm_states.pi)
        starts = batch.episode_starts.double()
        setattr(starts, SEQUENCE_LENGTHS, lengths)
        results = []
        for process in (RecurrentActorCriticPolicy._process_sequence, FusedLstmPolicy._process_sequence):
            lstm = stock.policy.lstm_actor.double()
            lstm.zero_grad()
            output, _ = process(features, states, starts, lstm)
            output[mask].pow(2).sum().backward()
            results.append([output[mask], *(p.grad.clone() for p in lstm.parameters())])
        for ours, theirs in zip(results[1], results[0], strict=True):
            assert _relative_error(ours, theirs) < 1e-10
        stock.policy.lstm_actor.float()
    assert unpadded >= 2  # the unpadded pass was exercised, not only the plain fused call


def test_a_single_step_through_lstm_cell_equals_the_fused_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(7, 16, num_layers=2).double()
    features = torch.randn(5, 7, dtype=torch.float64)
    states = (torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64))
    ours, (hidden, cell) = single_step(features, states, lstm)
    output, (expected_hidden, expected_cell) = lstm(features[None], states)
    torch.testing.assert_close(ours, output[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hidden, expected_hidden, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cell, expected_cell, rtol=1e-12, atol=1e-12)


def test_a_start_inside_a_sequence_falls_back_to_the_stock_loop(monkeypatch):
    lstm = torch.nn.LSTM(5, 8)
    features = torch.randn(3 * 6, 5)  # 3 sequences of 6 steps, batch-major as sb3-contrib passes them
    states = (torch.randn(1, 3, 8), torch.randn(1, 3, 8))
    starts = torch.zeros(3, 6)
    starts[1, 4] = 1.0  # sequence 1 starts an episode at its 5th step
    calls = []
    stock_process = RecurrentActorCriticPolicy._process_sequence
    monkeypatch.setattr(engine.RecurrentActorCriticPolicy, "_process_sequence",
                        staticmethod(lambda *a: calls.append(1) or stock_process(*a)))
    ours, _ = FusedLstmPolicy._process_sequence(features, states, starts.reshape(-1), lstm)
    assert calls == [1]
    expected, _ = stock_process(features, states, starts.reshape(-1), lstm)
    torch.testing.assert_close(ours, expected)
    starts[1, 4], starts[2, 0] = 0.0, 1.0  # only at a sequence head: the fused path, same numbers
    ours, _ = FusedLstmPolicy._process_sequence(features, states, starts.reshape(-1), lstm)
    assert calls == [1]
    torch.testing.assert_close(ours, stock_process(features, states, starts.reshape(-1), lstm)[0], rtol=1e-5, atol=1e-6)


class _Losses(BaseCallback):
    def __init__(self):
        super().__init__()
        self.losses = []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        if "train/loss" in self.model.logger.name_to_value:
            self.losses.append(self.model.logger.name_to_value["train/loss"])


def test_seeded_training_gives_the_same_losses_and_saves_a_stock_loadable_model(short_episode_env, tmp_path):
    losses = []
    for policy in ("MlpLstmPolicy", FusedLstmPolicy):
        model = _model(policy, short_episode_env(), seed=11)
        recorder = _Losses()
        model.learn(1024, callback=recorder)
        losses.append(recorder.losses + [model.logger.name_to_value["train/loss"]])
    assert len(losses[0]) >= 3
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert isinstance(model, FusedRecurrentPPO) and isinstance(model.rollout_buffer, SequenceLengthRolloutBuffer)
    assert model.policy.optimizer.defaults["fused"] is True

    model.save(tmp_path / "fused.zip")
    assert isinstance(RecurrentPPO.load(tmp_path / "fused.zip", device="cpu").policy, FusedLstmPolicy)
    stock = RecurrentPPO.load(tmp_path / "fused.zip", device="cpu",
                              custom_objects={"policy_class": RecurrentActorCriticPolicy})
    obs = short_episode_env().reset()
    starts = torch.ones(4).numpy().astype(bool)
    ours = model.predict(obs, episode_start=starts, deterministic=True)[0]
    assert (stock.predict(obs, episode_start=starts, deterministic=True)[0] == ours).all()
