"""What a person reads of a tuning study: its summary as the UI's markdown artifact."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def study_markdown(name: str, finished: int, planned: int, metric: str,
                   best: tuple[int, float, Mapping[str, Any]] | None, importances: Mapping[str, float]) -> str:
    """The study so far: trials finished, the best trial and its values, the parameter importances.

    :param name: the study's name
    :param finished: complete and pruned trials
    :param planned: the trials the study is to reach
    :param metric: the validation metric the study maximizes
    :param best: the best complete trial's number, score and values (None while none completed)
    :param importances: PED-ANOVA importance by parameter (empty while too few trials differ)
    """
    lines = [f"# Study {name}", "",
             f"{finished} of {planned} trials finished; objective: best validation {metric} of the trial "
             "(test never seen).", ""]
    if best is not None:
        number, value, params = best
        lines += [f"Best: trial {number}, {value:.3f}, "
                  + ", ".join(f"`{key}` = {value_:.5g}" if isinstance(value_, float) else f"`{key}` = {value_!r}"
                              for key, value_ in params.items()), ""]
    if importances:
        lines += ["| parameter | importance (PED-ANOVA) |", "|---|---|",
                  *(f"| `{key}` | {value:.3f} |" for key, value in importances.items())]
    else:
        lines.append("Parameter importances appear once two complete trials differ.")
    return "\n".join(lines)


__all__ = ["study_markdown"]
