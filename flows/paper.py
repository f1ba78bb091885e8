"""``paper-trade``: a bundle paper-trades the new bars of a growing bar file, on an interval schedule.

Each run decides and fills the bars that closed since the last one (``rltrader paper``'s account, so
the CLI and the deployment share one ledger per name) and publishes the account on the Artifacts
page: its equity against buy-and-hold and the backtest's test pace (a picture inside the artifact),
and the figures side by side.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.artifacts import embed_images, markdown_artifact
from rltrader.display.formatting import percent, sharpe_with_interval, signed_percent
from tasks.paper import advance_paper_account

PAPER_ARTIFACT_PREFIX = "paper-"


def paper_markdown(result: dict[str, Any]) -> str:
    """The artifact: the picture, then paper, buy-and-hold and the backtest's test split side by side."""
    summary = result["summary"]
    paper, hold, test = summary.get("paper", {}), summary.get("buy_and_hold", {}), summary["backtest_test"]
    lines = [f"# Paper account `{summary['name']}`", "",
             f"{summary['bars']:,} bars from {summary.get('first_bar', '-')} to {summary.get('last_bar', '-')} "
             f"({result['new_bars']:,} traded in this run) of `{summary['data_path']}`; "
             + (f"model `{summary['model']}`, version **v{summary['version']}** deciding "
                f"({len(summary['switches'])} switch(es) so far). " if summary.get("model") else
                f"bundle `{summary['bundle']}`. ") +
             f"Holding **{summary.get('position', 'flat')}**; decided for the next bar: "
             f"**{summary.get('next_decision') or 'none'}**.", "",
             f"![paper equity]({Path(result['picture']).name})", "",
             "| | paper account | buy and hold (same costs) | backtest, test split |", "|---|---:|---:|---:|",
             f"| return | {signed_percent(paper.get('total_return'))} | {signed_percent(hold.get('total_return'))} "
             f"| {signed_percent(test.get('total_return'))} |",
             f"| Sharpe [95% interval] | {sharpe_with_interval(paper)} | {sharpe_with_interval(hold)} "
             f"| {sharpe_with_interval(test)} |",
             f"| max drawdown | {percent(paper.get('max_drawdown'))} | {percent(hold.get('max_drawdown'))} | "
             f"{percent(test.get('max_drawdown'))} |",
             f"| trades | {summary.get('trades', 0):,} | 1 | |", "",
             f"Ledger (one row per bar, keyed by bar time): `{result['ledger']}`. A Sharpe over a few weeks of bars "
             "is mostly noise: read its interval."]
    alarms = summary.get("break_alarms") or {}
    if alarms.get("count"):
        lines += ["", "## Break alarm", "", f"- {alarms['first']}",
                  *([f"- {alarms['count'] - 1} more alarm(s) on the same version since."] if alarms["count"] > 1
                    else [])]
    elif summary.get("watch"):
        watch = summary["watch"]
        lines += ["", f"Break test on v{watch['version']}: CUSUM {watch['statistic']:.1f} of {watch['threshold']:.1f} "
                      "(no alarm)."]
    return "\n".join(lines + stand_aside_lines(summary.get("stand_aside") or {}))


def stand_aside_lines(aside: dict[str, Any]) -> list[str]:
    """Whether the account stands aside after a break alarm, until when, and the last periods it stood aside."""
    lines = []
    if aside.get("standing"):
        standing = aside["standing"]
        lines += ["", "## Standing aside", "", f"Flat since the bar after {standing['since']} (the break alarm on "
                  f"v{standing['version']}); trading again when a retrain has the evidence: a new champion, or "
                  f"v{standing['version']} kept on held-out bars after {standing['change_time']} where it earned."]
    for period in aside.get("periods", [])[-3:]:
        lines += ["", f"Stood aside from {period['since']} to {period['until']}: {period['reason']}."]
    return lines


def artifact_key(name: str) -> str:
    """The artifact's key: Prefect allows lowercase letters, digits and dashes only."""
    return PAPER_ARTIFACT_PREFIX + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


@flow(name="paper-trade", flow_run_name="paper {name}")
def paper_trade(bundle: str | None, data_path: str, name: str = "demo", paper_dir: str = "results/paper",
                start: str | None = None, model: str | None = None,
                registry_dir: str = "results/registry", stand_aside: bool | None = None) -> dict[str, Any]:
    """Advance the paper account ``name`` by the new bars of ``data_path`` and publish it.

    :param bundle: the model bundle (``rltrader export``, or a run's ``bundle/``); empty with ``model``
    :param data_path: the bar file a terminal export appends to
    :param name: the paper account (its ledger lives in ``paper_dir/name``; ``rltrader paper`` shares it)
    :param paper_dir: where paper accounts live
    :param start: a new account's first decision bar (default: the newest bar when it opens)
    :param model: follow this registry model's champion instead of a bundle (``rltrader retrain``): a newly
        promoted champion takes over at the next bar, carrying the position
    :param registry_dir: where model registries live
    :param stand_aside: with ``model``: go flat from the bar after a break alarm on the champion until a retrain has
        the evidence (a new champion, or the champion kept where it earned after the break); None: as the account
        was set
    """
    result = advance_paper_account(bundle, data_path, name, paper_dir, start, model, registry_dir, stand_aside)
    folder = Path(result["picture"]).parent
    markdown_artifact(embed_images(paper_markdown(result), folder), key=artifact_key(name),
                      description=f"Paper account {name}: equity against buy-and-hold and the backtest")
    summary = result["summary"]
    if result["switch"]:
        switch = result["switch"]
        get_run_logger().info("Paper account %s: %s v%s takes over from v%s after bar %s, position carried", name,
                              model, switch["to_version"], switch["from_version"], switch["after_bar"])
    get_run_logger().info("Paper account %s: %d new bar(s), %d in all, equity %s", name, result["new_bars"],
                          summary["bars"], summary.get("paper", {}).get("final_equity"))
    return result
