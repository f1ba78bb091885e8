"""A training minibatch's LSTM passes on the compiled recurrence, actor and critic at once.

``nn.LSTM`` on CPU (oneDNN) spends a minibatch of a few long sequences on work nobody
uses: its input projection covers the padding too, it computes a gradient for the
observations, and its recurrence is latency-bound (timings: ``bench/README.md``). Here the
input projection is one matrix product over the real steps only (and its backward
computes the weight gradients, plus the input's only where a layer below needs it), the
recurrence runs in :mod:`rltrader.engine.kernels.lstm`, and each LSTM's whole layer is
one job: with two threads the actor's and the critic's run side by side (torch and the
kernels release the GIL), forward and backward.

Exactness: the same function as ``nn.LSTM`` from the same initial states, to float32
rounding; outputs at padded steps are zero (every loss term masks them out).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from torch import nn

from rltrader.engine.kernels.lstm import lstm_backward, lstm_forward

LSTMStates = tuple[th.Tensor, th.Tensor]
_TENSORS_PER_LSTM = 7  # layer input, W_ih, b_ih, b_hh, W_hh, initial hidden, initial cell
_SAVED_PER_LSTM = 8


@dataclass(frozen=True)
class PackedLayout:
    """Where each sequence's real steps sit: in the padded (n_seq x max_length) batch and packed."""

    starts: np.ndarray  # int64 (S,): first packed row of each sequence
    lengths: np.ndarray  # int64 (S,)
    rows: th.Tensor  # int64 (R,): padded row of each packed row
    padded_rows: int  # n_seq x max_length

    @classmethod
    def from_lengths(cls, lengths: np.ndarray, max_length: int) -> PackedLayout:
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        offsets = np.arange(len(lengths), dtype=np.int64) * max_length - starts
        rows = np.repeat(offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)
        return cls(starts, lengths, th.from_numpy(rows), len(lengths) * max_length)

    def pad(self, packed: th.Tensor) -> th.Tensor:
        """(R, ...) -> (padded rows, ...), zero at padding (which every loss term masks out)."""
        return packed.new_zeros((self.padded_rows, *packed.shape[1:])).index_copy(0, self.rows, packed)


def applies_to(lstm: nn.LSTM, inputs: th.Tensor) -> bool:
    """Whether the compiled path computes what ``lstm`` would on ``inputs`` (or the observations
    they are flattened from), to float32 rounding; else use ``nn.LSTM``."""
    return (
        inputs.dtype == th.float32
        and inputs.device.type == "cpu"
        and not lstm.batch_first
        and not lstm.bidirectional
        and lstm.proj_size == 0
        and (lstm.dropout == 0 or lstm.num_layers == 1 or not lstm.training)
    )


def _single_threaded_torch() -> None:
    """The second thread's torch ops stay on it: OpenMP's and MKL's thread counts are per thread.

    This also sets torch's default for threads started later; the trainer creates the
    pool inside ``FusedRecurrentPPO.train``, which restores that default when it ends.
    """
    th.set_num_threads(1)


@functools.cache
def _second_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rltrader-lstm", initializer=_single_threaded_torch)


def run_jobs(jobs: list[Callable[[], Any]], threads: int) -> list[Any]:
    """Run the jobs, on this thread and (``threads`` 2) one more: torch ops and the kernels release the GIL.

    The second thread runs under this thread's grad mode (which torch keeps per thread).
    """
    if threads < 2 or len(jobs) < 2:
        return [job() for job in jobs]
    grad_enabled = th.is_grad_enabled()

    def in_grad_mode(job: Callable[[], Any]) -> Any:
        with th.set_grad_enabled(grad_enabled):
            return job()

    pending = [_second_thread().submit(in_grad_mode, job) for job in jobs[1:]]
    return [jobs[0](), *(future.result() for future in pending)]


class _Recurrence(th.autograd.Function):
    """One layer of one or more LSTMs over the same packed layout.

    Inputs, per LSTM: layer input (R, in), W_ih, b_ih, b_hh, W_hh, h0 (S, H), c0 (S, H).
    Outputs, per LSTM: hidden state of every real step (R, H), final hidden and cell
    state of every sequence (S, H). Each LSTM's whole work (input projection, recurrence;
    in backward the recurrence and the weight products) is one job, so with two threads
    the actor's and the critic's run side by side.
    """

    @staticmethod
    def forward(ctx: Any, layout: PackedLayout, threads: int, *tensors: th.Tensor) -> tuple[th.Tensor, ...]:
        last_rows = layout.starts + layout.lengths - 1

        def job(layer_input: th.Tensor, weight_ih: th.Tensor, bias_ih: th.Tensor | None, bias_hh: th.Tensor | None,
                weight_hh: th.Tensor, hidden0: th.Tensor, cell0: th.Tensor) -> tuple[th.Tensor, ...]:
            input_gates = nn.functional.linear(layer_input, weight_ih, None if bias_ih is None else bias_ih + bias_hh)
            rows, size = input_gates.shape[0], weight_hh.shape[1]
            hidden, previous_hidden, cell, tanh_cell = (input_gates.new_empty((rows, size)) for _ in range(4))
            activations = input_gates.new_empty((rows, 4 * size))
            hidden0, cell0 = hidden0.contiguous(), cell0.contiguous()
            lstm_forward(input_gates.numpy(), weight_hh.t().contiguous().numpy(), hidden0.numpy(), cell0.numpy(),
                         layout.starts, layout.lengths, hidden.numpy(), previous_hidden.numpy(), cell.numpy(),
                         tanh_cell.numpy(), activations.numpy())
            return hidden, previous_hidden, cell, tanh_cell, activations

        inputs = [tuple(None if t is None else t.detach() for t in tensors[at:at + _TENSORS_PER_LSTM])
                  for at in range(0, len(tensors), _TENSORS_PER_LSTM)]
        results = run_jobs([functools.partial(job, *lstm_inputs) for lstm_inputs in inputs], threads)
        saved, outputs = [], []
        for (layer_input, weight_ih, _, _, weight_hh, _, cell0), (hidden, previous, cell, tanh_cell, act) in zip(
                inputs, results, strict=True):
            saved += [layer_input, weight_ih, weight_hh, cell0.contiguous(), previous, cell, tanh_cell, act]
            outputs += [hidden, hidden[last_rows], cell[last_rows]]
        ctx.layout, ctx.threads = layout, threads
        ctx.save_for_backward(*saved)
        return tuple(outputs)

    @staticmethod
    def backward(ctx: Any, *grads: th.Tensor | None) -> tuple[th.Tensor | None, ...]:
        layout: PackedLayout = ctx.layout
        saved = ctx.saved_tensors

        def job(index: int) -> list[th.Tensor | None]:
            layer_input, weight_ih, weight_hh, cell0, previous_hidden, cell, tanh_cell, activations = saved[
                _SAVED_PER_LSTM * index:_SAVED_PER_LSTM * (index + 1)]
            grad_hidden, grad_last_hidden, grad_last_cell = (
                th.zeros_like(like) if grad is None else grad.contiguous()
                for grad, like in zip(grads[3 * index:3 * index + 3], (cell, cell0, cell0), strict=True))
            grad_gates = th.empty_like(activations)
            grad_hidden0, grad_cell0 = th.empty_like(cell0), th.empty_like(cell0)
            lstm_backward(weight_hh.numpy(), grad_hidden.numpy(), grad_last_hidden.numpy(), grad_last_cell.numpy(),
                          activations.numpy(), tanh_cell.numpy(), cell.numpy(), cell0.numpy(), layout.starts,
                          layout.lengths, grad_gates.numpy(), grad_hidden0.numpy(), grad_cell0.numpy())
            needs = ctx.needs_input_grad[2 + _TENSORS_PER_LSTM * index:2 + _TENSORS_PER_LSTM * (index + 1)]
            grad_bias = grad_gates.sum(0) if needs[2] or needs[3] else None
            return [grad_gates @ weight_ih if needs[0] else None,
                    grad_gates.t() @ layer_input if needs[1] else None,
                    grad_bias if needs[2] else None,
                    grad_bias if needs[3] else None,
                    grad_gates.t() @ previous_hidden if needs[4] else None,
                    grad_hidden0 if needs[5] else None,
                    grad_cell0 if needs[6] else None]

        n_lstms = len(saved) // _SAVED_PER_LSTM
        results = run_jobs([functools.partial(job, index) for index in range(n_lstms)], ctx.threads)
        return (None, None, *(grad for lstm_grads in results for grad in lstm_grads))


def packed_lstm_passes(inputs: list[tuple[th.Tensor, LSTMStates, nn.LSTM]], layout: PackedLayout,
                       threads: int = 1) -> list[tuple[th.Tensor, LSTMStates]]:
    """Each (features (padded rows, input), initial states (layers, S, H), lstm) through its LSTM.

    Returns, per LSTM, the output of every real step, packed (R, H) in ``layout``'s order
    (:meth:`PackedLayout.pad` spreads a packed tensor back over the padded rows), and the
    final states (layers, S, H) of every sequence. With ``threads`` 2 the LSTMs run side by
    side (the caller keeps torch itself on one thread, or torch's idle OpenMP worker spins
    on the second core for milliseconds after each parallel product).
    """
    packed_features: dict[int, th.Tensor] = {}  # actor and critic usually share one features tensor
    layer_inputs = []
    for features, _, _ in inputs:
        if id(features) not in packed_features:
            packed_features[id(features)] = features.index_select(0, layout.rows)
        layer_inputs.append(packed_features[id(features)])
    finals: list[tuple[list[th.Tensor], list[th.Tensor]]] = [([], []) for _ in inputs]
    for layer in range(inputs[0][2].num_layers):
        tensors: list[th.Tensor | None] = []
        for layer_input, (_, (hidden0, cell0), lstm) in zip(layer_inputs, inputs, strict=True):
            tensors += [layer_input, *(getattr(lstm, f"{name}_l{layer}", None)
                                       for name in ("weight_ih", "bias_ih", "bias_hh", "weight_hh")),
                        hidden0[layer], cell0[layer]]
        outputs = _Recurrence.apply(layout, threads, *tensors)
        for index in range(len(inputs)):
            hidden, last_hidden, last_cell = outputs[3 * index:3 * index + 3]
            layer_inputs[index] = hidden
            finals[index][0].append(last_hidden)
            finals[index][1].append(last_cell)
    return [(hidden, (th.stack(last_hidden), th.stack(last_cell)))
            for hidden, (last_hidden, last_cell) in zip(layer_inputs, finals, strict=True)]


class _JoinedTowers(th.autograd.Function):
    """The towers' outputs, cut from their graphs; its backward runs each tower's backward as one job.

    Each tower's backward is a ``torch.autograd.backward`` from its own outputs (reentrant,
    as ``torch.utils.checkpoint`` does), so with two threads the two run side by side. The
    towers' graphs are not inputs of this node (the outer backward would walk them a second
    time); a gradient-requiring ``anchor`` puts the node in the graph instead.
    """

    @staticmethod
    def forward(ctx: Any, towers: list[tuple[th.Tensor, ...]], threads: int,
                anchor: th.Tensor) -> tuple[th.Tensor, ...]:
        ctx.towers, ctx.threads = towers, threads
        return tuple(tensor.detach().clone() for tower in towers for tensor in tower)

    @staticmethod
    def backward(ctx: Any, *grads: th.Tensor | None) -> tuple[None, None, None]:
        jobs, at = [], 0
        for tower in ctx.towers:
            pairs = [(tensor, grad) for tensor, grad in zip(tower, grads[at:at + len(tower)], strict=True)
                     if grad is not None and tensor.requires_grad]
            at += len(tower)
            if pairs:
                jobs.append(functools.partial(th.autograd.backward, *map(list, zip(*pairs, strict=True))))
        ctx.towers = None  # their graphs are freed by their backward passes
        run_jobs(jobs, ctx.threads)
        return None, None, None


def joined_towers(towers: list[tuple[th.Tensor, ...]], threads: int = 1) -> list[tuple[th.Tensor, ...]]:
    """The outputs of sub-networks that share no parameters and no graph (actor: LSTM, head,
    action distribution; critic: LSTM, head, value), with their backward passes side by side.

    With ``threads`` 2, a backward through the returned tensors runs each tower's backward
    as a job (:class:`_JoinedTowers`): the heads' gradients and the LSTMs' run on both
    cores. The backward is torch's C++ engine plus the recurrence's few calls, so the two
    threads hardly contend for the GIL (a forward of small head ops on two threads does,
    which is why the heads' forward stays on one). Gradients are those of one backward
    through the whole graph: each parameter belongs to one tower only.
    """
    if not th.is_grad_enabled() or not any(t.requires_grad for tower in towers for t in tower):
        return towers
    joined = _JoinedTowers.apply(towers, threads, th.empty(0, requires_grad=True))
    at, regrouped = 0, []
    for tower in towers:
        regrouped.append(tuple(joined[at:at + len(tower)]))
        at += len(tower)
    return regrouped


__all__ = ["LSTMStates", "PackedLayout", "applies_to", "joined_towers", "packed_lstm_passes", "run_jobs"]
