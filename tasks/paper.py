"""Advance a paper account by the bars that arrived since its last run, as a Prefect task.

Retries are on the decorator: a file caught halfway through a terminal's write, or a run that lost
its process, is tried again; the account itself is kill-safe (its state is written atomically per
batch, keyed by bar time), so a retry continues where the last complete batch ended.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from rltrader.errors import UserInputError
from rltrader.live.paper import holding, open_paper_account, paper_summary, write_paper_report
from tasks.abandoned_runs import flow_run_owner


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """A wrong bundle or file will be as wrong on the next try: only other failures are retried."""
    try:
        state.result()
    except UserInputError:
        return False
    except Exception:  # noqa: BLE001 - anything else may pass (a half-written file, a lost process)
        return True
    return False


@task(name="paper-step", task_run_name="paper {name}: new bars of {data_path}", cache_policy=NO_CACHE, retries=2,
      retry_delay_seconds=5, retry_condition_fn=_retry_unless_user_error)
def advance_paper_account(bundle: str | None, data_path: str, name: str, paper_dir: str,
                          start: str | None = None, model: str | None = None,
                          registry_dir: str = "results/registry", stand_aside: bool | None = None) -> dict[str, Any]:
    """Switch to a new champion if the followed model has one, then decide and fill every new closed bar of
    ``data_path``; returns the account's summary and files."""
    account = open_paper_account(bundle, data_path, name, paper_dir, start, model, registry_dir, stand_aside)
    bars = account.new_bars()
    with holding(account, owner=flow_run_owner()):
        switch = account.follow_champion()
        before = len(account.ledger["time"])
        if len(bars) or account.created:
            account.process(bars)
        new = len(account.ledger["time"]) - before  # bars traded (a new account's warm-up is not)
        files = write_paper_report(account)
    return {"summary": paper_summary(account), "new_bars": new, "picture": str(files["picture"]),
            "ledger": str(account.root / "ledger.csv"), "switch": switch}
