"""The fast evaluator: a policy's actor run without SB3, several models at once.

Why it is fast, and still exact:

* the observation is ``[feature window, position, unrealized PnL]``; only the last two
  depend on earlier actions. The LSTM's input projection of the feature windows is
  therefore computed for a thousand bars in one compiled pass (in a thread, overlapping
  the stepping), and each step only adds the recurrent term, with the position and PnL
  folded into it as two extra columns. Each bar's projection is summed alone, in input
  order, so the live stream (:mod:`rltrader.live.stream`), projecting one bar at a time,
  gets the same bits;
* the step itself, LSTM, policy MLP, action arg-max and account, is one compiled loop
  (:func:`rltrader.engine.kernels.actors.step_actors`) over a chunk of bars: no per-step
  SB3 machinery (tensor conversion, distributions, state tuples), no per-step Python;
* the account is advanced with the same table lookups and arithmetic as ``TradingEnv.step``.

Under the observation skip (:class:`~rltrader.engine.policies.ObservationSkipPolicy`) the actor
MLP's first layer reads ``[LSTM output | observation]``: its window columns are projected with the
LSTM's (one product per chunk, ``4H + W0`` outputs), and each step adds its LSTM-output and
position/PnL columns.

A feed-forward (``MlpPolicy``) actor takes the same route without the LSTM: its first
layer's window part is projected per chunk, and each step adds the position and PnL
columns and runs the later layers (:func:`~rltrader.engine.kernels.actors.step_mlp_actors`).

The actions are the deterministic ones (arg-max of the logits). Floating-point sums run in
a different order than torch's, so logits differ in the last bits; an action could only
change where two logits tie to about 1e-6, and ``tests/test_evaluation.py`` and
``bench/evaluation.py`` check on trained models that the actions are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rltrader.config import EnvConfig
from rltrader.engine.kernels.activations import IDENTITY
from rltrader.engine.kernels.actors import project_rows, step_actors, step_mlp_actors
from rltrader.engine.policy_arrays import UnsupportedPolicyError, actor_head, lstm_layers
from rltrader.env import ACTION_SIGNS, FLAT, MarketData, evaluation_config
from rltrader.env.trading_env import EpisodeBounds

#: Bars whose input projection is computed per matrix product (bounds memory at ~4 MB x K).
CHUNK_BARS = 1024


@dataclass(frozen=True)
class ActorWeights:
    """The actor path of one ``RecurrentActorCriticPolicy`` as float32 arrays, laid out for the kernel.

    Read through :mod:`rltrader.engine.policy_arrays` (the engine's rollout kernel reads
    policies the same way); here the layer-0 input weights are split: the feature window's
    part is projected for many bars at once, and the position and PnL columns join the
    recurrent weights, since those two inputs depend on earlier actions.
    """

    hidden: int
    window_in: np.ndarray  # (window values, 4H [+ W0]): layer-0 input weights of the feature window [and the
    # actor MLP's first layer's window columns, under the skip]
    bias0: np.ndarray  # (4H [+ W0],)
    recurrent0: np.ndarray  # (H + 2, 4H): [W_hh | position column | PnL column]^T
    upper: tuple[tuple[np.ndarray, np.ndarray], ...]  # layers >= 1: ([W_ih | W_hh]^T (2H, 4H), bias)
    mlp: tuple[tuple[np.ndarray, np.ndarray, int], ...]  # (W^T, bias, activation code), after the skip layer if any
    action: tuple[np.ndarray, np.ndarray]  # (W^T (width, 3), bias)
    signature: tuple
    skip: np.ndarray  # (H + 2, W0) under the skip: the first MLP layer's [LSTM output | position, PnL] rows of
    # W^T; (H + 2, 0) without
    skip_activation: int  # the first MLP layer's activation under the skip

    @classmethod
    def from_model(cls, model: Any, observation_size: int) -> ActorWeights:
        from stable_baselines3.common.torch_layers import FlattenExtractor
        from torch import nn

        policy = model.policy
        lstm = getattr(policy, "lstm_actor", None)
        if not isinstance(lstm, nn.LSTM):
            raise UnsupportedPolicyError("the fast evaluator needs a RecurrentPPO policy with an LSTM actor")
        extractor = policy.features_extractor if policy.share_features_extractor else policy.pi_features_extractor
        if not isinstance(extractor, FlattenExtractor):
            raise UnsupportedPolicyError(f"features extractor {type(extractor).__name__} is not supported")
        if lstm.input_size != observation_size:
            raise UnsupportedPolicyError("the LSTM does not read this environment's observation")
        first, *upper_layers = lstm_layers(lstm)
        *mlp_layers, action_layer = actor_head(policy)
        if action_layer.outputs != len(ACTION_SIGNS) or action_layer.activation != IDENTITY:
            raise UnsupportedPolicyError("the action net must be one linear layer onto 3 logits")
        hidden = lstm.hidden_size
        window_in, bias0 = _transposed(first.weight_ih[:, :-2]), first.bias
        skip, skip_activation = np.zeros((hidden + 2, 0), np.float32), IDENTITY
        if getattr(policy, "observation_skip", False):
            if not mlp_layers:
                raise UnsupportedPolicyError("the observation skip needs at least one actor layer before the logits")
            skip_layer, *mlp_layers = mlp_layers  # W^T rows: [LSTM output (H) | window | position, PnL]
            window_in = np.ascontiguousarray(np.concatenate((window_in, skip_layer.weight_t[hidden:-2]), axis=1))
            bias0 = np.concatenate((bias0, skip_layer.bias))
            skip = np.ascontiguousarray(np.concatenate((skip_layer.weight_t[:hidden], skip_layer.weight_t[-2:])))
            skip_activation = skip_layer.activation
        mlp = tuple((layer.weight_t, layer.bias, layer.activation) for layer in mlp_layers)
        upper = tuple((_transposed(np.concatenate((layer.weight_ih, layer.weight_hh), axis=1)), layer.bias)
                      for layer in upper_layers)
        signature = (hidden, lstm.num_layers, skip.shape, skip_activation,
                     tuple((w.shape, code) for w, _, code in mlp))
        return cls(
            hidden=hidden, window_in=window_in, bias0=bias0,
            recurrent0=_transposed(np.concatenate((first.weight_hh, first.weight_ih[:, -2:]), axis=1)),
            upper=upper, mlp=mlp, action=(action_layer.weight_t, action_layer.bias), signature=signature,
            skip=skip, skip_activation=skip_activation,
        )


@dataclass(frozen=True)
class MlpActorWeights:
    """The actor of one feed-forward ``ActorCriticPolicy`` (SB3's ``MlpPolicy``) as float32 arrays.

    The first layer is split like the LSTM's input weights: the feature window's rows are
    projected for many bars at once, the position and PnL rows are added per step."""

    window_in: np.ndarray  # (window values, W0)
    bias0: np.ndarray  # (W0,)
    tail: np.ndarray  # (2, W0): the position and PnL rows of the first layer's W^T
    first_activation: int
    later: tuple[tuple[np.ndarray, np.ndarray, int], ...]  # (W^T, bias, activation), the action logits last
    signature: tuple

    @classmethod
    def from_model(cls, model: Any, observation_size: int) -> MlpActorWeights:
        from stable_baselines3.common.torch_layers import FlattenExtractor

        policy = model.policy
        extractor = policy.features_extractor if policy.share_features_extractor else policy.pi_features_extractor
        if not isinstance(extractor, FlattenExtractor):
            raise UnsupportedPolicyError(f"features extractor {type(extractor).__name__} is not supported")
        first, *later = actor_head(policy)
        if first.inputs != observation_size:
            raise UnsupportedPolicyError("the policy does not read this environment's observation")
        action_layer = (later or [first])[-1]
        if action_layer.outputs != len(ACTION_SIGNS) or action_layer.activation != IDENTITY:
            raise UnsupportedPolicyError("the action net must be one linear layer onto 3 logits")
        rest = tuple((layer.weight_t, layer.bias, layer.activation) for layer in later)
        return cls(window_in=np.ascontiguousarray(first.weight_t[:-2]), bias0=first.bias,
                   tail=np.ascontiguousarray(first.weight_t[-2:]), first_activation=first.activation, later=rest,
                   signature=("mlp", first.weight_t.shape, first.activation,
                              tuple((w.shape, code) for w, _, code in rest)))


def _transposed(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix.T)


@dataclass(frozen=True)
class PackedActors:
    """K actors of one architecture stacked on a leading model axis: the kernel's weight arguments."""

    recurrent: np.ndarray
    upper: np.ndarray
    upper_bias: np.ndarray
    mlp: np.ndarray
    mlp_bias: np.ndarray
    mlp_widths: np.ndarray
    mlp_activation: np.ndarray
    action: np.ndarray
    action_bias: np.ndarray
    skip: np.ndarray  # (K, H + 2, W0 or 0)

    @classmethod
    def of(cls, actors: Sequence[ActorWeights]) -> PackedActors:
        first = actors[0]
        hidden, n_upper = first.hidden, len(first.upper)
        skipping = first.skip.shape[1] > 0  # widths and activations then start with the skip layer's
        widths = [hidden] + [first.skip.shape[1]] * skipping + [weight.shape[1] for weight, _, _ in first.mlp]
        activations = [first.skip_activation] * skipping + [code for _, _, code in first.mlp]
        upper = np.zeros((len(actors), n_upper, 2 * hidden, 4 * hidden), dtype=np.float32)
        upper_bias = np.zeros((len(actors), n_upper, 4 * hidden), dtype=np.float32)
        for k, actor in enumerate(actors):
            for layer, (weight, bias) in enumerate(actor.upper):
                upper[k, layer], upper_bias[k, layer] = weight, bias
        flat = [np.concatenate([weight.reshape(-1) for weight, _, _ in actor.mlp] or [np.zeros(0, np.float32)])
                for actor in actors]
        flat_bias = [np.concatenate([bias for _, bias, _ in actor.mlp] or [np.zeros(0, np.float32)])
                     for actor in actors]
        mlp, mlp_bias = np.stack(flat), np.stack(flat_bias)
        return cls(
            recurrent=np.stack([actor.recurrent0 for actor in actors]), upper=upper, upper_bias=upper_bias,
            mlp=mlp, mlp_bias=mlp_bias, mlp_widths=np.array(widths, dtype=np.int64),
            mlp_activation=np.array(activations, dtype=np.int64),
            action=np.stack([actor.action[0] for actor in actors]),
            action_bias=np.stack([actor.action[1] for actor in actors]),
            skip=np.stack([actor.skip for actor in actors]),
        )


def project_windows(rows: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The first layer's input projection of feature windows for each model, ``(bars, K, outputs)``.

    Every row is projected alone (:func:`~rltrader.engine.kernels.actors.project_rows`), so a bar gets
    the same bits here, in a chunk of a thousand, as in the live stream, alone; BLAS would not promise it.

    :param rows: feature windows, ``(bars, window values)`` float32
    :param layers: per model, the window part of the first layer's weights (transposed) and its bias
    """
    out = np.empty((rows.shape[0], len(layers), layers[0][1].shape[0]), dtype=np.float32)
    for k, (weight_t, bias) in enumerate(layers):
        project_rows(rows, weight_t, bias, out[:, k])
    return out


def _accounts(n_models: int, bounds: EpisodeBounds, config: EnvConfig) -> tuple[np.ndarray, ...]:
    """The kernels' per-model account state at the split's start: (equity, entry price and units,
    held action, alive, actions taken, decisions made)."""
    account = np.zeros((n_models, 3))
    account[:, 0] = config.initial_balance
    return (account, np.full(n_models, FLAT, dtype=np.int64), np.ones(n_models, dtype=np.bool_),
            np.zeros((n_models, bounds.last - bounds.first), dtype=np.int64), np.zeros(n_models, dtype=np.int64))


def _sizing(market: MarketData) -> np.ndarray:
    """The kernels' sizing argument: fraction sizing (0/1) and the size."""
    return np.array([float(market.fraction_sizing), market.size])


def fast_actions(
    models: Sequence[Any], market: MarketData, split: str, config: EnvConfig
) -> list[np.ndarray]:
    """Deterministic actions of each model over the whole ``split`` (one array per model).

    All models must share one architecture (they are stepped together); the result
    matches :func:`~rltrader.evaluation.reference.reference_actions` model by model.
    """
    config = evaluation_config(config)
    if not any(hasattr(model.policy, "lstm_actor") for model in models):
        return _feedforward_actions(models, market, split, config)
    bounds = EpisodeBounds.whole(market, split, config)
    size = config.window_size * market.n_features
    actors = [ActorWeights.from_model(model, size + 2) for model in models]
    if len({actor.signature for actor in actors}) > 1:
        raise UnsupportedPolicyError("models evaluated in one batch must share their architecture")
    packed = PackedActors.of(actors)
    n_models, hidden, n_layers = len(actors), actors[0].hidden, len(actors[0].upper) + 1

    layer0_input = np.zeros((n_models, hidden + 2), dtype=np.float32)  # [hidden, position, PnL %]
    hidden_state = np.zeros((n_models, n_layers, hidden), dtype=np.float32)
    cell_state = np.zeros((n_models, n_layers, hidden), dtype=np.float32)
    account, held, alive, taken, steps = _accounts(n_models, bounds, config)
    windows = market.windows(config.window_size)
    offset = config.window_size - 1

    def input_projection(chunk_start: int) -> np.ndarray:
        """Layer-0 input of every bar in a chunk, ``(bars, K, 4H [+ W0])``: one matrix product per model."""
        rows = windows[chunk_start - offset : min(chunk_start + CHUNK_BARS, bounds.last) - offset]
        return project_windows(rows, [(actor.window_in, actor.bias0) for actor in actors])

    # The next chunk's projection runs in a thread (both kernels release the GIL) while this
    # chunk is stepped: on two cores the projection is then almost free.
    chunk_starts = list(range(bounds.first, bounds.last, CHUNK_BARS))
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(input_projection, chunk_starts[0])
        for index, chunk_start in enumerate(chunk_starts):
            projected = upcoming.result()
            if index + 1 < len(chunk_starts):
                upcoming = pool.submit(input_projection, chunk_starts[index + 1])
            if not step_actors(projected, chunk_start, packed.recurrent, packed.upper, packed.upper_bias, packed.mlp,
                               packed.mlp_bias, packed.mlp_widths, packed.mlp_activation, packed.action,
                               packed.action_bias, packed.skip, layer0_input, hidden_state, cell_state, account,
                               held, alive,
                               market.step_table, _sizing(market), taken, steps):
                break
    return [row[:count].copy() for row, count in zip(taken, steps.tolist(), strict=True)]


def _feedforward_actions(models: Sequence[Any], market: MarketData, split: str,
                         config: EnvConfig) -> list[np.ndarray]:
    """:func:`fast_actions` for ``MlpPolicy`` models: the same chunked projection, no LSTM state."""
    bounds = EpisodeBounds.whole(market, split, config)
    actors = [MlpActorWeights.from_model(model, config.window_size * market.n_features + 2) for model in models]
    if len({actor.signature for actor in actors}) > 1:
        raise UnsupportedPolicyError("models evaluated in one batch must share their architecture")
    n_models = len(actors)
    first = actors[0]
    widths = np.array([first.bias0.shape[0]] + [weight.shape[1] for weight, _, _ in first.later], dtype=np.int64)
    activations = np.array([first.first_activation] + [code for _, _, code in first.later], dtype=np.int64)
    mlp = np.stack([np.concatenate([w.reshape(-1) for w, _, _ in actor.later] or [np.zeros(0, np.float32)])
                    for actor in actors])
    mlp_bias = np.stack([np.concatenate([b for _, b, _ in actor.later] or [np.zeros(0, np.float32)])
                         for actor in actors])
    tail = np.stack([actor.tail for actor in actors])
    position_pnl = np.zeros((n_models, 2), dtype=np.float32)
    account, held, alive, taken, steps = _accounts(n_models, bounds, config)
    windows = market.windows(config.window_size)
    offset = config.window_size - 1
    for chunk_start in range(bounds.first, bounds.last, CHUNK_BARS):
        rows = windows[chunk_start - offset : min(chunk_start + CHUNK_BARS, bounds.last) - offset]
        projected = project_windows(rows, [(actor.window_in, actor.bias0) for actor in actors])
        if not step_mlp_actors(projected, chunk_start, tail, mlp, mlp_bias, widths, activations, position_pnl,
                               account, held, alive, market.step_table, _sizing(market), taken, steps):
            break
    return [row[:count].copy() for row, count in zip(taken, steps.tolist(), strict=True)]


__all__ = ["ActorWeights", "MlpActorWeights", "PackedActors", "UnsupportedPolicyError", "fast_actions",
           "project_windows"]
