"""The fast recurrent engine: sb3-contrib's ``RecurrentPPO``, with the LSTM work done the short way.

Laid out like sb3-contrib (``ppo_recurrent/`` beside ``common/recurrent/``): the algorithm
(:mod:`.algorithm`), the policy (:mod:`.policies`), the rollout buffer (:mod:`.buffers`),
the packed LSTM passes of an update (:mod:`.packed_lstm`), the compiled rollout step
(:mod:`.rollout_step`), a policy as arrays for the kernels (:mod:`.policy_arrays`, shared
with the fast evaluator) and the numba kernels themselves (:mod:`.kernels`). It imports
nothing else from rltrader. What each step saves is measured in
``bench/training_throughput.py`` and written up in ``bench/README.md``.

Where sb3-contrib's ``RecurrentActorCriticPolicy`` does more work than the math needs, and
what the engine does instead:

1. **Minibatches with episode starts.** ``_process_sequence`` runs the fused ``nn.LSTM``
   only when no sequence in the batch contains an episode start; otherwise it steps the
   LSTM one timestep at a time in Python, resetting the state where an episode starts.
   But the rollout buffer cuts sequences at episode starts, so a start can only be the
   *first* step of a sequence. Resetting the state there is the same as zeroing that
   sequence's initial hidden and cell state and running the whole batch in one fused
   call. Only a sequence with a start after its first step (which the stock buffer never
   builds) still takes the stock per-step loop.
2. **Padding.** The buffer pads every sequence of a minibatch to the longest one, and the
   padded steps go through the LSTM only to be masked out of every loss term.
   :class:`~.buffers.SequenceLengthRolloutBuffer` tells the policy each sequence's true
   length; the policy runs the LSTM over the sequences sorted by length, dropping each
   from the batch as it ends, and leaves zeros at the padded steps. (The update's
   minibatches now take item 5; this ``nn.LSTM`` path serves every other multi-step call.)
3. **Single steps.** Rollouts feed one step per account; ``torch.lstm_cell`` does that
   step with less overhead than ``nn.LSTM`` (oneDNN).
4. **Adam.** torch's single-tensor CPU Adam launches several kernels per parameter
   tensor; the fused CPU kernel does the same update in one.
5. **The LSTM of a minibatch** (:mod:`.packed_lstm`): with sequence lengths known, both
   LSTMs run on the packed real steps: one input projection each, the recurrence compiled
   (:mod:`.kernels.lstm`, two sequences stepping together so they share each read of the
   recurrent weights). The heads, the log-probabilities and the entropy (``Categorical``'s
   arithmetic, without building the distribution) run on the real steps too, and only the
   three outputs are padded back. With two threads the actor's and the critic's LSTM
   passes run side by side, and so do their whole backward passes (heads included: actor
   and critic share no parameters).
6. **Minibatch assembly**: one numpy gather per field instead of a tensor per sequence.
7. **The rollout step** (:mod:`.rollout_step`): one torch product projects the
   observations onto both LSTMs, then one compiled call does both LSTM cells, both heads
   and the action probabilities; the action is drawn by ``torch.multinomial`` as
   ``Categorical.sample`` draws it (same random stream). Outside a rollout, or for shapes
   the kernel does not cover, the step is torch's, without the distribution objects (the
   same numbers as stock, bit for bit).

The policy may also give its heads a skip connection around the LSTM (``observation_skip``, on
by default through ``training.policy``): the actor's and critic's MLPs then read ``[LSTM output |
observation]``. Every path above carries it: the update appends the packed observations to the
packed LSTM outputs, and the rollout kernel takes the heads' observation columns into its one
product. On the stock loop the same policy is :class:`~.policies.ObservationSkipPolicy`.

The algorithm is sb3-contrib's, untouched: same minibatches, same losses, same updates.
The outputs agree with the stock policy to float rounding (``tests/test_engine.py``); a
saved model is an ordinary ``RecurrentPPO`` zip that stock ``RecurrentPPO.load`` reads.
"""

from rltrader.engine.algorithm import FusedRecurrentPPO
from rltrader.engine.buffers import SEQUENCE_LENGTHS, SequenceLengthRolloutBuffer
from rltrader.engine.policies import FusedLstmPolicy

__all__ = ["SEQUENCE_LENGTHS", "FusedLstmPolicy", "FusedRecurrentPPO", "SequenceLengthRolloutBuffer"]
