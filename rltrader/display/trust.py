"""A model's trust report as people read it: lines for ``rltrader models show`` and a section of ``report.md``
(the UI's training-report artifact). The figures come from :mod:`rltrader.training.trust`."""

from __future__ import annotations

from typing import Any

from rltrader.display.formatting import interval, number, percent, probability


def _sharpe(policy: dict[str, Any] | None) -> str:
    if not policy:
        return "n/a"
    bounds = policy.get("sharpe_interval")
    return number(policy.get("sharpe"), 2) + ("" if not bounds else f" {interval(bounds)}")


def trust_lines(trust: dict[str, Any] | None) -> list[str]:
    """The trust report in sentences, most telling first; a line saying so when the bundle has none."""
    if not trust:
        return ["No trust report: the bundle was written before rltrader kept one (run its `rltrader train` "
                "command again to add it)."]
    test = trust["test"]
    lines = [f"Test ({test['start'][:10]} to {test['end'][:10]}, {test['bars']:,} bars, seen once): Sharpe "
             f"{_sharpe(test['agent'])} vs buy-and-hold {_sharpe(test['buy_and_hold'])}; return "
             f"{percent(test['agent'].get('total_return'))} vs "
             f"{percent((test['buy_and_hold'] or {}).get('total_return'))}."]
    selection = trust.get("selection") or {}
    if selection.get("trials"):
        lines.append(f"Selection: the best of {selection['trials']} validation looks (validation Sharpe "
                     f"{number(selection.get('validation_sharpe'), 2)}, deflated Sharpe "
                     f"{probability(selection.get('deflated_sharpe'))}).")
    if stress := trust.get("cost_stress"):
        lines.append(f"Cost stress, {stress['spread_multiplier']:g}x the spread on the test bars: Sharpe "
                     f"{_sharpe(stress['agent'])} vs buy-and-hold {_sharpe(stress['buy_and_hold'])}; return "
                     f"{percent(stress['agent'].get('total_return'))}.")
    if parity := trust.get("parity"):
        lines.append(f"Parity: the bundle's live stream made {parity['action_mismatches']} different decisions over "
                     f"the {parity['bars']:,} test bars (final equity differs by {parity['equity_rel_diff']:.1e} "
                     "relative)." if parity.get("checked") else f"Parity: not checked ({parity.get('why')}).")
    if study := trust.get("study"):
        pick = study.get("pick") or {}
        lines.append(f"Chosen by study {study['study']}: probability of backtest overfitting "
                     f"{number(study.get('pbo'), 2)} over {study.get('trials', 'n/a')} trials; the pick's deflated "
                     f"Sharpe {probability(pick.get('deflated_sharpe'))}." if study.get("pbo") is not None else
                     f"Chosen by study {study['study']}: too few trials kept returns for a PBO.")
    if cpcv := trust.get("cpcv"):
        quantiles = cpcv.get("path_sharpe_quantiles") or {}
        budget = {None: "the walk-forward profile", "none": "train's own budget"}.get(
            cpcv.get("profile"), f"the {cpcv.get('profile')} profile")
        lines.append(f"CPCV of the same bars and config file ({cpcv['walkforward']}; its runs trained on "
                     f"{budget}): {cpcv['paths']} paths, path Sharpe 5/50/95% "
                     f"{number(quantiles.get('5%'), 2)} / {number(quantiles.get('50%'), 2)} / "
                     f"{number(quantiles.get('95%'), 2)} vs buy-and-hold {_sharpe(cpcv.get('buy_and_hold'))}; beats "
                     f"buy-and-hold on {cpcv['p_beats_buy_and_hold']:.0%} of paths x seeds.")
    return lines


def trust_markdown(trust: dict[str, Any] | None) -> str:
    """The trust report as a section of ``report.md``."""
    return "\n".join(["", "## Trust: what judges this model (kept in its bundle)", "",
                      *(f"- {line}" for line in trust_lines(trust)), ""])


__all__ = ["trust_lines", "trust_markdown"]
