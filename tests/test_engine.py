"""The fast recurrent engine computes what sb3-contrib's stock policy computes.

Short training episodes put episode starts in most minibatches, which is exactly where the
stock policy falls back to its per-timestep loop and the engine does not; minibatches that
span several accounts' rollouts carry padding, which the engine skips.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback

from rltrader.engine import SEQUENCE_LENGTHS, FusedLstmPolicy, FusedRecurrentPPO, SequenceLengthRolloutBuffer, policies
from rltrader.engine.packed_lstm import PackedLayout, joined_towers, packed_lstm_passes
from rltrader.engine.policies import ObservationSkipPolicy, single_step
from rltrader.env import VecTradingEnv

POLICY_KWARGS = {"lstm_hidden_size": 32, "net_arch": {"pi": [32], "vf": [32]}}


@pytest.fixture(scope="module")
def short_episode_env(prepared_sample, prepared_market):
    _, config = prepared_sample
    env_config = config.env.model_copy(update={"episode_length": 40})
    return lambda: VecTradingEnv(prepared_market, "train", env_config, 4)


def _model(policy, env, seed=3, **kwargs):
    algorithm = FusedRecurrentPPO if policy is FusedLstmPolicy else RecurrentPPO
    kwargs = {"policy_kwargs": POLICY_KWARGS, **kwargs}
    return algorithm(policy, env, n_steps=64, batch_size=64, n_epochs=2, seed=seed, device="cpu", **kwargs)


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


def _update_outputs(policy, batch, mask):
    """``evaluate_actions`` on one minibatch and the gradients of its summed outputs: values, log-probabilities,
    entropies (real steps only, as in ``RecurrentPPO.train``), then every parameter's gradient."""
    policy.zero_grad()
    values, log_prob, entropy = policy.evaluate_actions(
        batch.observations, batch.actions.long().flatten(), batch.lstm_states, batch.episode_starts)
    (_masked(values, mask).sum() + _masked(log_prob, mask).sum() + _masked(entropy, mask).sum()).backward()
    return [_masked(values, mask), _masked(log_prob, mask), _masked(entropy, mask),
            *(p.grad.clone() for p in policy.parameters())]


def test_the_engine_buffer_builds_the_stock_minibatches(filled_buffer):
    """Same fields, element for element, plus each sequence's true length."""
    stock_buffer = filled_buffer.rollout_buffer
    np.random.seed(5)
    stock_batches = list(stock_buffer.get(64))
    np.random.seed(5)
    engine_batches = list(_engine_view(stock_buffer).get(64))
    assert len(engine_batches) == len(stock_batches) >= 4
    for ours, theirs in zip(engine_batches, stock_batches, strict=True):
        for field in ("observations", "actions", "old_values", "old_log_prob", "advantages", "returns",
                      "episode_starts", "mask"):
            assert getattr(ours, field).dtype == getattr(theirs, field).dtype
            assert torch.equal(getattr(ours, field), getattr(theirs, field)), field
        for states_ours, states_theirs in zip(ours.lstm_states, theirs.lstm_states, strict=True):
            assert all(torch.equal(a, b) for a, b in zip(states_ours, states_theirs, strict=True))
        assert int(getattr(ours.episode_starts, SEQUENCE_LENGTHS).sum()) == int(theirs.mask.sum())


@pytest.mark.parametrize("lstm_threads", [1, 2])
def test_minibatches_with_episode_starts_give_the_same_outputs_and_gradients(filled_buffer, monkeypatch, lstm_threads):
    """Whole policy, float32: within 1e-5 relative (the kernels sum in different orders)."""
    stock = filled_buffer
    fused = FusedLstmPolicy(stock.observation_space, stock.action_space, lambda _: 1e-3, **POLICY_KWARGS)
    fused.load_state_dict(stock.policy.state_dict())
    fused.lstm_threads = lstm_threads
    compiled_calls, tower_threads = [], []
    monkeypatch.setattr(policies, "packed_lstm_passes", lambda *a: compiled_calls.append(1) or packed_lstm_passes(*a))
    monkeypatch.setattr(policies, "joined_towers", lambda towers, threads: tower_threads.append(threads)
                        or joined_towers(towers, threads))
    batches_with_starts = padded_batches = 0
    for batch in _engine_view(stock.rollout_buffer).get(64):
        batches_with_starts += bool(batch.episode_starts.any())
        mask = batch.mask > 0
        padded_batches += bool((~mask).any())
        outputs = [_update_outputs(policy, batch, mask) for policy in (stock.policy, fused)]
        for ours, theirs in zip(outputs[1], outputs[0], strict=True):
            assert _relative_error(ours, theirs) < 1e-5
    assert batches_with_starts >= 2 and padded_batches >= 2
    # every minibatch: both LSTMs compiled, their backward passes on lstm_threads threads
    assert len(compiled_calls) == 2 * len(tower_threads) and tower_threads == [lstm_threads] * len(tower_threads)
    assert len(tower_threads) >= 4


@pytest.mark.parametrize(("num_layers", "bias", "threads", "size", "lengths"), [
    (1, True, 1, 16, [7, 2, 11, 1]), (1, True, 2, 18, [4, 9, 6]), (2, False, 2, 16, [7, 2, 11, 1])])
def test_the_compiled_recurrence_equals_nn_lstm_sequence_by_sequence(num_layers, bias, threads, size, lengths):
    """Outputs, final states and every gradient (weights, biases, inputs, initial states).

    The kernels step sequences two at a time (longest first) and one alone where a pair's
    shorter has ended or the count is odd; a size not divisible by 4 leaves a remainder row.
    """
    torch.manual_seed(num_layers)
    lstms = [torch.nn.LSTM(9, size, num_layers=num_layers, bias=bias) for _ in range(2)]
    lengths = np.array(lengths)
    max_length = int(lengths.max())
    layout = PackedLayout.from_lengths(lengths, max_length)
    n_seq = len(lengths)
    features = torch.randn(n_seq * max_length, 9, requires_grad=True)
    states = [tuple(torch.randn(num_layers, n_seq, size, requires_grad=True) for _ in range(2)) for _ in lstms]
    weights = torch.randn(int(lengths.sum()), size)
    results = []
    for compiled in (True, False):
        for tensor in (features, *states[0], *states[1], *(p for lstm in lstms for p in lstm.parameters())):
            tensor.grad = None
        if compiled:
            items = [(features, state, lstm) for state, lstm in zip(states, lstms, strict=True)]
            passes = packed_lstm_passes(items, layout, threads)
        else:  # each sequence alone through nn.LSTM, its real steps only
            passes = []
            for (hidden0, cell0), lstm in zip(states, lstms, strict=True):
                outputs, finals = [], ([], [])
                for s, length in enumerate(lengths):
                    steps = features[s * max_length:s * max_length + length, None]
                    output, (hidden, cell) = lstm(steps, (hidden0[:, s:s + 1], cell0[:, s:s + 1]))
                    outputs.append(output[:, 0])
                    finals[0].append(hidden)
                    finals[1].append(cell)
                passes.append((torch.cat(outputs), (torch.cat(finals[0], 1), torch.cat(finals[1], 1))))
        loss = sum((output * weights).sum() + hidden.sum() + 0.5 * cell.sum() for output, (hidden, cell) in passes)
        loss.backward()
        results.append([*(tensor for output, finals in passes for tensor in (output, *finals)), features.grad,
                        *(t.grad for state in states for t in state),
                        *(p.grad for lstm in lstms for p in lstm.parameters())])
    for ours, theirs in zip(*results, strict=True):
        assert _relative_error(ours, theirs) < 1e-5
    assert torch.equal(layout.pad(results[0][0])[layout.rows], results[0][0])
    assert layout.pad(results[0][0]).abs().sum(1).eq(0).sum() == n_seq * max_length - lengths.sum()


@pytest.mark.parametrize("lstm_threads", [1, 2])
def test_with_the_observation_skip_the_update_gives_the_stock_outputs_and_gradients(filled_buffer, lstm_threads):
    """The skip on the engine's update paths (packed LSTM passes, threaded towers) against sb3-contrib's
    own ``evaluate_actions`` on :class:`ObservationSkipPolicy`: within 1e-5 relative."""
    kwargs = {**POLICY_KWARGS, "observation_skip": True}
    stock = ObservationSkipPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3,
                                  **kwargs)
    fused = FusedLstmPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3, **kwargs)
    fused.load_state_dict(stock.state_dict())
    fused.lstm_threads = lstm_threads
    features = filled_buffer.observation_space.shape[0]
    assert stock.mlp_extractor.policy_net[0].in_features == 32 + features  # [LSTM output | observation]
    compared = 0
    for batch in _engine_view(filled_buffer.rollout_buffer).get(64):
        mask = batch.mask > 0
        outputs = [_update_outputs(policy, batch, mask) for policy in (stock, fused)]
        for ours, theirs in zip(outputs[1], outputs[0], strict=True):
            assert _relative_error(ours, theirs) < 1e-5
        compared += 1
    assert compared >= 4


def test_the_observation_skip_needs_a_critic_lstm(filled_buffer):
    with pytest.raises(ValueError, match="observation_skip needs a critic LSTM"):
        ObservationSkipPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3,
                              enable_critic_lstm=False, observation_skip=True, **POLICY_KWARGS)


def test_a_rollout_step_draws_the_same_actions_as_the_stock_forward(filled_buffer):
    """Same random stream, same numbers, bit for bit: actions, values, log-probabilities, states."""
    policy = filled_buffer.policy.__class__  # stock class, for the stock method
    fused = FusedLstmPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3,
                            **POLICY_KWARGS)
    fused.load_state_dict(filled_buffer.policy.state_dict())
    observations = filled_buffer.rollout_buffer.observations
    obs = torch.as_tensor(observations.reshape(-1, *filled_buffer.observation_space.shape)[:4])
    states = filled_buffer._last_lstm_states
    starts = torch.tensor([1.0, 0.0, 0.0, 1.0])
    for deterministic in (False, True):
        results = []
        for forward in (policy.forward, FusedLstmPolicy.forward):
            torch.manual_seed(9)
            with torch.no_grad():
                actions, values, log_prob, new_states = forward(fused, obs, states, starts, deterministic)
            results.append([actions, values, log_prob, *new_states.pi, *new_states.vf])
        for ours, theirs in zip(results[1], results[0], strict=True):
            assert ours.shape == theirs.shape and torch.equal(ours, theirs)


@pytest.mark.parametrize("policy_kwargs", [
    POLICY_KWARGS,
    {"lstm_hidden_size": 18, "n_lstm_layers": 2, "net_arch": {"pi": [16, 8], "vf": []},
     "activation_fn": torch.nn.ReLU},
    {**POLICY_KWARGS, "observation_skip": True},
    {"lstm_hidden_size": 18, "n_lstm_layers": 2, "net_arch": {"pi": [], "vf": [8]}, "observation_skip": True},
])
def test_the_compiled_rollout_step_draws_the_same_actions_as_the_stock_forward(filled_buffer, policy_kwargs,
                                                                              monkeypatch):
    """Same random stream, same actions; values, log-probabilities and states to float32 rounding
    (within 1e-5 relative, as the update's outputs: the kernel sums in a different order). With the
    observation skip the stock forward is sb3-contrib's, on :class:`ObservationSkipPolicy`."""
    stock = ObservationSkipPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3,
                                  **policy_kwargs)
    fused = FusedLstmPolicy(filled_buffer.observation_space, filled_buffer.action_space, lambda _: 1e-3,
                            **policy_kwargs)
    fused.load_state_dict(stock.state_dict())
    with torch.no_grad():  # spread the logits so that the draws differ between accounts
        for policy in (stock, fused):
            policy.action_net.weight.mul_(20.0)
    observations = filled_buffer.rollout_buffer.observations
    obs = torch.as_tensor(observations.reshape(-1, *filled_buffer.observation_space.shape)[:6])
    shape = (policy_kwargs.get("n_lstm_layers", 1), 6, policy_kwargs["lstm_hidden_size"])
    states = RNNStates(*((torch.randn(shape), torch.randn(shape)) for _ in range(2)))
    starts = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    calls = []
    monkeypatch.setattr(policies.RolloutStepWeights, "step",
                        (lambda step: lambda *a: calls.append(1) or step(*a))(policies.RolloutStepWeights.step))
    with fused.compiled_rollout():
        assert fused.rollout_weights is not None
        for deterministic in (False, True):
            results = []
            for policy in (stock, fused):
                torch.manual_seed(9)
                with torch.no_grad():
                    actions, values, log_prob, new_states = policy.forward(obs, states, starts, deterministic)
                results.append([actions, values, log_prob, *new_states.pi, *new_states.vf])
            assert torch.equal(results[1][0], results[0][0])
            if not deterministic:
                drawn = results[0][0]
            for ours, theirs in zip(results[1][1:], results[0][1:], strict=True):
                assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
                assert _relative_error(ours, theirs) < 1e-5
    assert calls == [1, 1] and fused.rollout_weights is None
    assert len(set(drawn.tolist())) > 1  # the accounts' draws differ: the comparison can fail


def test_the_compiled_rollout_is_used_in_rollouts_and_declines_what_it_does_not_cover(short_episode_env, monkeypatch):
    model = _model(FusedLstmPolicy, short_episode_env(), seed=2)
    steps = []
    monkeypatch.setattr(policies.RolloutStepWeights, "step",
                        (lambda step: lambda *a: steps.append(1) or step(*a))(policies.RolloutStepWeights.step))
    model.learn(64 * 4)
    assert len(steps) == 64  # every step of the rollout
    no_critic_lstm = FusedLstmPolicy(model.observation_space, model.action_space, lambda _: 1e-3,
                                     enable_critic_lstm=False, **POLICY_KWARGS)
    silu = FusedLstmPolicy(model.observation_space, model.action_space, lambda _: 1e-3,
                           activation_fn=torch.nn.SiLU, **POLICY_KWARGS)
    assert policies.RolloutStepWeights.of(no_critic_lstm) is None and policies.RolloutStepWeights.of(silu) is None


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
        for process in (RecurrentActorCriticPolicy._process_sequence, FusedLstmPolicy._lstm_sequence):
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
    monkeypatch.setattr(policies.RecurrentActorCriticPolicy, "_process_sequence",
                        staticmethod(lambda *a: calls.append(1) or stock_process(*a)))
    ours, _ = FusedLstmPolicy._lstm_sequence(features, states, starts.reshape(-1), lstm)
    assert calls == [1]
    expected, _ = stock_process(features, states, starts.reshape(-1), lstm)
    torch.testing.assert_close(ours, expected)
    starts[1, 4], starts[2, 0] = 0.0, 1.0  # only at a sequence head: the fused path, same numbers
    ours, _ = FusedLstmPolicy._lstm_sequence(features, states, starts.reshape(-1), lstm)
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


@pytest.mark.parametrize("skip", [False, True])
def test_seeded_training_gives_the_same_losses_and_saves_a_stock_loadable_model(short_episode_env, tmp_path, skip):
    """The engine trains what sb3-contrib's loop trains (``MlpLstmPolicy``, or with the observation skip
    :class:`ObservationSkipPolicy`), and its zip loads in stock ``RecurrentPPO`` with the skip intact."""
    losses = []
    torch_threads = torch.get_num_threads()
    extra = {"policy_kwargs": {**POLICY_KWARGS, "observation_skip": True}} if skip else {}
    for policy in (ObservationSkipPolicy if skip else "MlpLstmPolicy", FusedLstmPolicy):
        model = _model(policy, short_episode_env(), seed=11, **extra)
        recorder = _Losses()
        model.learn(1024, callback=recorder)
        losses.append(recorder.losses + [model.logger.name_to_value["train/loss"]])
        assert torch.get_num_threads() == torch_threads  # the engine's update gives torch its threads back
    assert len(losses[0]) >= 3
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert isinstance(model, FusedRecurrentPPO) and isinstance(model.rollout_buffer, SequenceLengthRolloutBuffer)
    assert model.policy.optimizer.defaults["fused"] is True

    model.save(tmp_path / "fused.zip")
    loaded = RecurrentPPO.load(tmp_path / "fused.zip", device="cpu").policy
    assert isinstance(loaded, FusedLstmPolicy) and loaded.observation_skip is skip
    stock = RecurrentPPO.load(tmp_path / "fused.zip", device="cpu",
                              custom_objects={"policy_class": ObservationSkipPolicy if skip
                                              else RecurrentActorCriticPolicy})
    obs = short_episode_env().reset()
    starts = torch.ones(4).numpy().astype(bool)
    ours = model.predict(obs, episode_start=starts, deterministic=True)[0]
    assert (stock.predict(obs, episode_start=starts, deterministic=True)[0] == ours).all()
