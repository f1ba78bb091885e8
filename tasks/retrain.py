"""Retraining as Prefect tasks: plan the challenger, train it, compare it with the champion and decide.

Retries are on the decorators. Training a challenger is an ordinary run (checkpoints in the
registry's ``runs/``), so a retried attempt resumes from the last checkpoint; a challenger trained
before is read back. A user's mistake (a changed bar history) is never retried.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rltrader.jobs.requests import RetrainRequest
from rltrader.retraining.retrain import RetrainOutcome, RetrainPlan, decide, plan_retrain, train_challenger
from rltrader.runtime.allocator import relax_heap_trimming
from tasks.train import RETRY_OPTIONS, is_transient


@task(name="plan-challenger", cache_policy=NO_CACHE, retry_condition_fn=is_transient,
      task_run_name="plan the challenger of {request.name}")
def plan_challenger_task(request: RetrainRequest) -> RetrainPlan | RetrainOutcome:
    """Check the bars against the registry's history and place the windows; a skip's outcome if nothing to train."""
    return plan_retrain(request.to_spec(source="retrain request"))


@task(name="train-challenger", cache_policy=NO_CACHE, task_run_name="train the challenger of {plan.name}",
      **RETRY_OPTIONS)
def train_challenger_task(plan: RetrainPlan) -> str:
    """Train (or resume) the challenger's run; returns its directory."""
    relax_heap_trimming()
    return train_challenger(plan)


@task(name="champion-vs-challenger", cache_policy=NO_CACHE, retry_condition_fn=is_transient,
      task_run_name="champion vs challenger of {plan.name}")
def decide_task(plan: RetrainPlan, run_dir: str) -> RetrainOutcome:
    """Score both on the held-out window, test, register the challenger, promote it only if it won."""
    return decide(plan, run_dir)
