"""Parallel candidates: train one iteration several times with different seeds, keep the best.

A candidate is a *fork* of the run for one iteration: its own directory
(``<run>/candidates/iter_XX/cand_K``) starts as a copy of the run's state and best model,
trains that one iteration there with its own seed (candidate K adds ``K * SEED_STRIDE``;
candidate 0 is exactly the serial run), checkpoints there and resumes there. Forks share
nothing while they train, so they can run in threads, processes or on other machines
(given a shared filesystem). Adoption then copies the winner's iteration, best model and
state into the run, the state last: it is the commit marker, so a kill mid-adoption
leaves the run as it was and the next attempt adopts again. Only then are the forks pruned
(all but the ``keep`` best; the run state keeps every candidate's figures), or a run of N
candidates would hold N copies of every iteration's models.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from rltrader.atomic import write_json, write_with
from rltrader.errors import UserInputError
from rltrader.records import CandidateEntry, CandidateResult, IterationRecord
from rltrader.training.run_state import RunState
from rltrader.training.spec import RunSpec
from rltrader.training.trainer import RunPaths, Trainer

logger = logging.getLogger(__name__)

SEED_STRIDE = 10_000  # far above any iteration count, so candidate seeds never collide
_FORKED_FILES = ("run_state.json", "best_model.zip", "best_model.json")


def candidate_dir(run_dir: str | Path, iteration: int, candidate: int) -> Path:
    return Path(run_dir) / "candidates" / f"iter_{iteration:02d}" / f"cand_{candidate}"


def _copy_atomically(source: Path, target: Path) -> None:
    write_with(target, lambda tmp: shutil.copyfile(source, tmp))


def fork_run(run_dir: str | Path, iteration: int, candidate: int) -> Path:
    """The candidate's directory, forked from the run unless it already holds this iteration's fork.

    ``fork.json`` is written after the copies, so a fork interrupted while copying is
    redone, and a fork that got as far as training resumes from its own checkpoints."""
    fork = candidate_dir(run_dir, iteration, candidate)
    marker = fork / "fork.json"
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("iteration") == iteration:
        return fork
    if fork.exists():
        shutil.rmtree(fork)
    fork.mkdir(parents=True)
    root = Path(run_dir)
    for name in _FORKED_FILES:
        if (root / name).is_file():
            _copy_atomically(root / name, fork / name)
    write_json(marker, {"iteration": iteration, "candidate": candidate, "forked_from": str(root)})
    return fork


def train_candidate(spec: RunSpec, iteration: int, candidate: int) -> CandidateResult:
    """Train ``iteration`` of the run ``spec`` in candidate ``candidate``'s fork; returns its record and
    where it lives.

    The fork's trainer is the run's, moved into the fork's directory with the candidate's seed
    offset; its hooks (the performance-mode switch writes into the run directory) are built
    once the fork exists, so a stale fork wiped here takes none of them with it.

    :param spec: the run the candidate forks
    :param iteration: the iteration every candidate trains
    :param candidate: the candidate's number (0 is exactly the serial run)
    """
    fork = fork_run(spec.run_dir, iteration, candidate)
    trainer = Trainer.from_spec(spec.in_directory(fork, seed_offset=candidate * SEED_STRIDE))
    record = trainer.open(log_resume=False).train_iteration(iteration)
    return CandidateResult(**{**record.model_dump(), "candidate": candidate}, candidate_dir=str(fork),
                           peak_score=peak_score(record))


def peak_score(record: IterationRecord) -> float:
    """The best validation score the iteration reached: what a new best model would hold."""
    scores = [validation.score for validation in record.validations]
    if record.validation_score is not None:
        scores.append(record.validation_score)
    return max(scores) if scores else float("-inf")


def prune_candidates(run_dir: str | Path, iteration: int, results: Sequence[CandidateResult], keep: int) -> None:
    """Delete the forks of an adopted ``iteration`` but the ``keep`` with the best peak scores."""
    ranked = sorted(results, key=lambda result: (-result.peak_score, result.candidate))
    for result in ranked[keep:]:
        shutil.rmtree(candidate_dir(run_dir, iteration, result.candidate), ignore_errors=True)
    if keep == 0:
        shutil.rmtree(candidate_dir(run_dir, iteration, 0).parent, ignore_errors=True)


def adopt_best_candidate(run_dir: str | Path, iteration: int, results: Sequence[CandidateResult],
                         keep: int = 0) -> IterationRecord:
    """Make the candidate with the highest peak validation score the run's ``iteration``.

    Its iteration directory and best model are copied into the run, then its state with
    the candidates' scores added to the iteration's record; then the forks are pruned to the
    ``keep`` best. Returns the record."""
    if not results:
        raise UserInputError(f"{run_dir}: no candidate finished iteration {iteration + 1}")
    run = RunPaths(Path(run_dir))
    adopted = RunState.read(run.state)
    if adopted is not None and adopted.next_iteration > iteration:
        logger.info("Iteration %d: a candidate was already adopted", iteration + 1)
        prune_candidates(run_dir, iteration, results, keep)  # a kill may have come between adopting and pruning
        return adopted.iterations[iteration]
    winner = max(results, key=lambda result: (result.peak_score, -result.candidate))
    fork = RunPaths(Path(winner.candidate_dir))
    for source in sorted(fork.iteration_dir(iteration).glob("*")):
        _copy_atomically(source, run.iteration_dir(iteration) / source.name)
    for name in ("best_model.zip", "best_model.json"):
        if (fork.root / name).is_file():
            _copy_atomically(fork.root / name, run.root / name)
    state = RunState.read(fork.state)
    if state is None or state.next_iteration <= iteration:
        raise UserInputError(f"{fork.root}: the winning candidate's run state lacks iteration {iteration + 1}")
    # the iteration took as long as its slowest candidate when they ran side by side; the
    # compute spent is every candidate's, so both are kept
    record = state.iterations[iteration].model_copy(update={
        "candidate": winner.candidate,
        "candidates": [CandidateEntry(candidate=result.candidate, seed=result.seed, peak_score=result.peak_score,
                                      timesteps=result.timesteps, wall_seconds=result.wall_seconds,
                                      evaluations=result.evaluations)
                       for result in sorted(results, key=lambda result: result.candidate)],
        "wall_seconds": max(result.wall_seconds for result in results),
        "candidates_timesteps_total": sum(result.timesteps for result in results),
    })
    state.iterations[iteration] = record
    state.save(run.state)
    prune_candidates(run_dir, iteration, results, keep)
    logger.info("Iteration %d: kept candidate %d of %d (peak validation %.3f; others %s)", iteration + 1,
                winner.candidate, len(results), winner.peak_score,
                ", ".join(f"{result.peak_score:.3f}" for result in results if result is not winner) or "none")
    return record
