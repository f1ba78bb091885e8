"""A diagnostic policy for ``bench/learning_curves.py --policy_skip``: sb3-contrib's ``MlpLstmPolicy`` whose actor
and critic heads read the bar's observation beside the LSTM's output (a skip connection around the LSTM).

Why it exists: the recurrent default learns the bar-sequence edge less well than the feed-forward profile (0.77
against 0.97 of the oracle's test Sharpe, every seed), on the same pattern columns, and no setting tried closed the
gap (LSTM 128, a plain critic, 10 epochs, other learning rates, gamma, lambda, risk aversion, twice the steps:
``bench/README.md``, "What the recurrent policy lacks"). The difference left is the architecture: in
``RecurrentActorCriticPolicy`` the heads see the bar only through the LSTM's gates, where the feed-forward network
reads it directly. This module tests that, on stock sb3-contrib, without touching the product: the fast engine,
the fast evaluator, the stream and the ONNX graph compute the policy as it is, so the bench runs with
``optimizations.fast_engine`` and ``optimizations.fast_evaluation`` off (SB3's own ``predict``).

It patches sb3-contrib's class in the process that calls :func:`install` (a bench worker), nowhere else.
"""

from __future__ import annotations

from typing import Any

OVERRIDES = {"optimizations.fast_engine": False, "optimizations.fast_evaluation": False}
"""The settings a run with the patched policy needs: the product's own fast paths assume the unpatched one."""


def install() -> None:
    """Widen the heads' input to ``lstm_hidden_size + features_dim`` and feed them ``[LSTM output | features]``."""
    import torch
    from sb3_contrib.common.recurrent import policies
    from stable_baselines3.common.torch_layers import MlpExtractor

    cls = policies.RecurrentActorCriticPolicy
    if getattr(cls, "_bench_skip_installed", False):
        return
    through_lstm = cls._process_sequence

    def build_mlp_extractor(self: Any) -> None:
        self.mlp_extractor = MlpExtractor(self.lstm_output_dim + self.features_dim, net_arch=self.net_arch,
                                          activation_fn=self.activation_fn, device=self.device)

    def process_sequence(features: torch.Tensor, lstm_states: Any, episode_starts: torch.Tensor,
                         lstm: torch.nn.LSTM) -> tuple[torch.Tensor, Any]:
        output, states = through_lstm(features, lstm_states, episode_starts, lstm)  # rows in the features' order
        return torch.cat((output, features), dim=1), states

    cls._build_mlp_extractor = build_mlp_extractor
    cls._process_sequence = staticmethod(process_sequence)
    cls._bench_skip_installed = True
