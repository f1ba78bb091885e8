"""bench/policy_skip.py, the diagnostic behind bench/README.md's "What the recurrent policy lacks": its heads must
read exactly ``[LSTM output | observation]``, row for row, or the figure it printed measures something else.

It patches sb3-contrib's class, so it runs in a child process: the patch must not reach the other tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import gymnasium as gym, numpy as np, torch
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from bench import policy_skip

space = gym.spaces.Box(-1.0, 1.0, (45,), dtype=np.float32)
plain = RecurrentActorCriticPolicy(space, gym.spaces.Discrete(3), lambda _: 3e-4, lstm_hidden_size=64)
through_lstm = RecurrentActorCriticPolicy._process_sequence
policy_skip.install()
policy_skip.install()  # a second call changes nothing
skip = RecurrentActorCriticPolicy(space, gym.spaces.Discrete(3), lambda _: 3e-4, lstm_hidden_size=64)
assert plain.mlp_extractor.policy_net[0].in_features == 64
assert skip.mlp_extractor.policy_net[0].in_features == 64 + 45
assert skip.mlp_extractor.value_net[0].in_features == 64 + 45

torch.manual_seed(0)
features = torch.randn(2 * 5, 45)  # 2 sequences of 5 steps, sequence-major as sb3-contrib lays out a minibatch
starts = torch.zeros(2 * 5)
starts[7] = 1.0  # an episode start inside the second sequence: the slow path
states = (torch.zeros(1, 2, 64), torch.zeros(1, 2, 64))
with torch.no_grad():
    out, _ = skip._process_sequence(features, states, starts, skip.lstm_actor)
    lstm_only, _ = through_lstm(features, states, starts, skip.lstm_actor)
assert out.shape == (10, 64 + 45)
assert torch.equal(out[:, :64], lstm_only) and torch.equal(out[:, 64:], features)
zero = (torch.zeros(1, 3, 64), torch.zeros(1, 3, 64))
actions, values, log_prob, _ = skip(torch.randn(3, 45), RNNStates(pi=zero, vf=zero), torch.ones(3))
assert actions.shape == (3,) and values.shape == (3, 1)
print("ok")
"""


def test_policy_skip_gives_the_heads_the_observation_beside_the_lstm_output():
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
