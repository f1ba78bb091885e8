"""What a person reads of a tuning study: its summary as the UI's markdown artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def overfitting_text(figures: Mapping[str, Any] | None) -> str:
    """How far the study's pick can be trusted, in one sentence: PBO over the trials, the pick's deflated Sharpe.

    :param figures: :meth:`~rltrader.tuning.study.Tuner.overfitting`'s figures (None: too few trials yet)
    """
    if not figures:
        return "Overfitting (PBO) is measured once two trials have validation returns to compare."
    text = (f"Probability of backtest overfitting {figures['pbo']:.2f} over {figures['trials']} trials "
            f"(CSCV, {figures['blocks']} blocks of the {figures['bars']:,} validation bars, {figures['splits']:,} "
            f"splits; the in-sample winner lost out of sample in {figures['p_oos_loss']:.0%} of them)")
    pick = figures.get("pick")
    if pick and pick.get("deflated_sharpe") is not None:
        text += (f"; the pick (trial {pick['trial']}) has deflated Sharpe {pick['deflated_sharpe']:.2f} over "
                 f"{figures['trials']} trials")
    return text + "."


def study_markdown(name: str, finished: int, planned: int, metric: str,
                   best: tuple[int, float, Mapping[str, Any]] | None, importances: Mapping[str, float],
                   overfitting: Mapping[str, Any] | None = None) -> str:
    """The study so far: trials finished, the best trial and its values, the parameter importances.

    :param name: the study's name
    :param finished: complete and pruned trials
    :param planned: the trials the study is to reach
    :param metric: the validation metric the study maximizes
    :param best: the best complete trial's number, score and values (None while none completed)
    :param importances: PED-ANOVA importance by parameter (empty while too few trials differ)
    :param overfitting: PBO over the trials and the pick's deflated Sharpe (None while too few)
    """
    lines = [f"# Study {name}", "",
             f"{finished} of {planned} trials finished; objective: best validation {metric} of the trial "
             "(test never seen).", ""]
    if best is not None:
        number, value, params = best
        lines += [f"Best: trial {number}, {value:.3f}, "
                  + ", ".join(f"`{key}` = {value_:.5g}" if isinstance(value_, float) else f"`{key}` = {value_!r}"
                              for key, value_ in params.items()), "", overfitting_text(overfitting), ""]
    if importances:
        lines += ["| parameter | importance (PED-ANOVA) |", "|---|---|",
                  *(f"| `{key}` | {value:.3f} |" for key, value in importances.items())]
    else:
        lines.append("Parameter importances appear once two complete trials differ.")
    return "\n".join(lines)


__all__ = ["overfitting_text", "study_markdown"]
