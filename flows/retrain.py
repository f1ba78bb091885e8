"""``retrain``: a challenger trained on the latest bars replaces the champion only on evidence.

The flow body is the retrain's steps: plan the challenger (history checked, windows placed) ->
train it (resumable) -> score champion and challenger on the held-out window and decide. The
decision is readable on the run's page (a markdown artifact with both models' figures and the
paired test) and the registry on the Artifacts page (``registry-<name>``, a table of every
version). The deployment of the same name runs it nightly, after performance mode starts.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.artifacts import markdown_artifact, table_artifact
from flows.fanout import artifact_key, run_name, with_configured_retries
from rltrader.display.formatting import percent, sharpe_with_interval, signed_percent
from rltrader.display.registry import event_line, version_rows
from rltrader.display.trust import trust_markdown
from rltrader.jobs.requests import RetrainRequest
from rltrader.registry.store import open_registry
from rltrader.retraining.retrain import RetrainOutcome
from rltrader.runtime.run_lock import run_directory_lock
from tasks.abandoned_runs import flow_run_owner
from tasks.retrain import decide_task, plan_challenger_task, train_challenger_task


def decision_markdown(outcome: RetrainOutcome, events: list[str], trust: dict[str, Any] | None = None) -> str:
    """The decision as a person reads it: what happened and why, the figures side by side, the challenger's
    trust report (``trust``, kept in its bundle), recent events."""
    lines = [f"# Retrain of `{outcome.name}`: {outcome.kind}", "", outcome.reason, ""]
    figures = outcome.figures
    if figures:
        columns = [("challenger", f"challenger v{outcome.version}"), ("champion", f"champion v{outcome.compared_with}"),
                   ("buy_and_hold", "buy and hold")]
        present = [(key, label) for key, label in columns if key in figures]

        def row(label: str, cell: Any) -> str:
            return f"| {label} | " + " | ".join(cell(figures[key]) for key, _ in present) + " |"

        lines += ["Held-out window (neither model trained or selected on it), same costs for all:", "",
                  "| | " + " | ".join(label for _, label in present) + " |",
                  "|---|" + "---:|" * len(present),
                  row("return", lambda entry: signed_percent(entry.get("total_return"))),
                  row("Sharpe [95% interval]", sharpe_with_interval),
                  row("max drawdown", lambda entry: percent(entry.get("max_drawdown"))), ""]
    if outcome.comparison is not None:
        test = outcome.comparison
        lines += [f"Paired test on {test.bars:,} bars: mean per-bar difference {test.mean_difference * 1e4:+.3f} bp, "
                  f"Newey-West SE {test.standard_error * 1e4:.3f} bp ({test.lags} lags), P(challenger better) "
                  f"**{test.probability_better:.3f}** (needs {test.required_probability:.2f}).", ""]
    lines += [f"Champion now: **{'v' + str(outcome.champion) if outcome.champion else 'none'}**.", ""]
    if outcome.version is not None:
        lines += [trust_markdown(trust).replace("## Trust:", f"## Trust in v{outcome.version}:"), ""]
    lines += ["Recent registry events:", "", *[f"- {line}" for line in events]]
    return "\n".join(lines)


@flow(name="retrain", flow_run_name=run_name(RetrainRequest, lambda request: f"retrain {request.name}", "retrain"),
      validate_parameters=True)
def retrain_model(request: RetrainRequest) -> dict[str, Any]:
    """Train a challenger on the latest bars and promote it over the champion only if it is better.

    :param request: the retrain (:class:`~rltrader.jobs.requests.RetrainRequest`): the model's name and bar file
    """
    logger = get_run_logger()
    base = request.to_config(source="retrain request")
    plan = plan_challenger_task(request)
    if isinstance(plan, RetrainOutcome):
        outcome = plan
    else:
        logger.info("Retrain %s: challenger (%s start) trains on %s .. %s, compared on %s .. %s", request.name,
                    plan.start, plan.windows["train"].start, plan.windows["validation"].end,
                    plan.windows["holdout"].start, plan.windows["holdout"].end)
        # one retrain per challenger run; a killed retrain's run is closed when the same command resumes it
        with run_directory_lock(plan.run.run_dir, remedy="wait for it, or stop it", holder="retrain",
                                what="challenger's run", owner=flow_run_owner()):
            run_dir = with_configured_retries(train_challenger_task, base)(plan)
            outcome = decide_task(plan, run_dir)
    registry = open_registry(request.registry_root, request.name)
    key = artifact_key("registry", request.name)
    table_artifact(version_rows(registry), key, f"Model registry {request.name}: every version, the champion marked")
    events = [event_line(event) for event in registry.file.events[-5:]][::-1]
    trust = registry.bundle(outcome.version).description.trust if outcome.version is not None else None
    markdown_artifact(decision_markdown(outcome, events, trust), artifact_key("retrain", request.name),
                      f"Retrain of {request.name}: the decision and its figures")
    logger.info("Retrain %s: %s", request.name, outcome.reason)
    return outcome.to_json()
