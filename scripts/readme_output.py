"""Regenerate the README's sample output from a real run of its main command.

    .venv/bin/python scripts/readme_output.py            # run, then rewrite README.md
    .venv/bin/python scripts/readme_output.py --check    # run, print what would change, write nothing

It runs the README's command (``rltrader train --data_path data/XAUUSDm_15min.csv --profile
demo``) as a new user would, but into a fresh temporary results and cache directory (a run
already in ``results/42`` would only be resumed), then ``rltrader preprocess`` on the same
file, then ``rltrader export results/42 --out xauusd_m15_onnx --format onnx`` (the MetaTrader 5
section), ``rltrader export results/42 --out xauusd_m15_bundle`` and ``rltrader signal --bundle
results/42/bundle --data_path data/XAUUSDm_15min.csv`` (the bundle and signal sections). Their
output, with the temporary paths written as the default ``results``/``cache``
and the middle iteration lines elided, replaces what stands between the README's
``<!-- readme_output:NAME -->`` and ``<!-- /readme_output:NAME -->`` markers, and the paragraph
that reads the run is rebuilt from the run's own ``metrics.json`` files. Nothing is typed by
hand, so the sample can never drift from what the command prints.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rltrader.display.formatting import percentile

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DATA = "data/XAUUSDm_15min.csv"
TRAIN = ["train", "--data_path", DATA, "--profile", "demo"]
PREPROCESS = ["preprocess", "--data_path", DATA]
EXPORT_OUT = "xauusd_m15_onnx"
BUNDLE_OUT = "xauusd_m15_bundle"
KEPT_FIRST_LINES = 2  # iteration lines shown before the "..."


def run(arguments: list[str], scratch: Path) -> str:
    """One rltrader command, as the README writes it, with the scratch results and cache."""
    command = [str(ROOT / ".venv" / "bin" / "rltrader"), *arguments]
    if arguments[0] in ("train", "preprocess"):
        command += ["--cache_dir", str(scratch / "cache")]
    if arguments[0] == "train":
        command += ["--results_dir", str(scratch / "results"), "--settings_file", str(scratch / "settings.json")]
    print("running:", " ".join(["rltrader", *arguments]), file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    if done.returncode != 0:
        sys.exit(f"readme_output: `rltrader {' '.join(arguments)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def as_the_user_sees_it(text: str, scratch: Path) -> str:
    """Scratch paths written as the defaults, and only the first and last iteration lines."""
    text = text.replace(str(scratch / "results"), "results").replace(str(scratch / "cache"), "cache")
    text = text.replace(str(scratch / EXPORT_OUT), EXPORT_OUT).replace(str(scratch / BUNDLE_OUT), BUNDLE_OUT)
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]  # rich pads titles to the console width
    iterations = [i for i, line in enumerate(lines) if re.match(r"Iteration \d+/\d+ \[", line)]
    if len(iterations) > KEPT_FIRST_LINES + 1:
        elided = set(iterations[KEPT_FIRST_LINES:-1])
        first = iterations[KEPT_FIRST_LINES]
        lines = [("..." if i == first else line) for i, line in enumerate(lines) if i not in elided or i == first]
    return "\n".join(lines)


def _metrics(run_dir: Path, split: str) -> dict[str, Any]:
    return json.loads((run_dir / "report" / split / "metrics.json").read_text(encoding="utf-8"))


def reading(run_dir: Path) -> str:
    """The paragraph under the sample: what this run's figures do and do not show."""
    summary = json.loads((run_dir / "optimization_summary.json").read_text(encoding="utf-8"))
    validation, test = _metrics(run_dir, "validation"), _metrics(run_dir, "test")
    agent, hold, picked = test["agent"], test["baselines"]["buy_and_hold"], validation["agent"]
    low, high = agent["sharpe_interval"]
    hold_low, hold_high = hold["sharpe_interval"]
    looks = summary["trials"]
    if low > 0:
        verdict = ("its interval lies above zero, so these weeks do show an edge, though two weeks are "
                   "too few to say how large")
    else:
        verdict = (f"P(true Sharpe > 0) of {agent['psr_vs_zero']:.2f} and a rank at the "
                   f"{percentile(agent['null_percentile'])} percentile of random policies that trade as often say "
                   "these weeks cannot tell this model from no edge")
    sign = "made" if agent["total_return"] >= 0 else "lost"
    return (
        f"What two weeks can and cannot show: this run's best model (kept for a validation Sharpe of "
        f"{picked['sharpe']:.2f}, the best of {looks} validation looks; deflated for those looks, "
        f"{picked['deflated_sharpe']:.2f}) {sign} {abs(agent['total_return']):.2%} on the test weeks, a Sharpe of "
        f"{agent['sharpe']:.2f} whose 95% interval runs from {low:.1f} to {high:.1f}, while buy-and-hold's "
        f"{hold['sharpe']:.2f} runs from {hold_low:.1f} to {hold_high:.1f}. The validation figure is the best "
        f"of {looks} looks, which its deflated value discounts; on test, {verdict}. A window this short can "
        "expose a gross failure or a large planted edge (see \"Known-answer markets\"), not a small one: judge "
        "the method on known-answer markets and many windows, and a model by its test figures with their "
        "intervals, never by validation. Returns are in the account's dollars with a full position worth the "
        "whole equity (the line under the table; see \"Position size and the account currency\"): "
        f"buy-and-hold's {hold['total_return']:.2%} is gold's own move over the test weeks. "
        f"This run took {summary['total_time_seconds'] / 60:.1f} min here; the speedup it prints is an estimate "
        "against the original method's throughput measured on this machine (see \"What you see\").")


def wrap(text: str, width: int = 92) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def replace_section(readme: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- readme_output:{name} -->\n)(.*?)(<!-- /readme_output:{name} -->)", re.S)
    if not pattern.search(readme):
        sys.exit(f"readme_output: README.md has no <!-- readme_output:{name} --> ... <!-- /readme_output:{name} --> "
                 "markers; put them around the section to regenerate")
    return pattern.sub(lambda match: match.group(1) + body.rstrip("\n") + "\n" + match.group(3), readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="run and show the new sections; leave README.md as is")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rltrader-readme-") as name:
        scratch = Path(name)
        train = as_the_user_sees_it(run(TRAIN, scratch), scratch)
        paragraph = wrap(reading(scratch / "results" / "42"))
        prepare = as_the_user_sees_it(run(PREPROCESS, scratch), scratch)
        exported = as_the_user_sees_it(run(["export", str(scratch / "results" / "42"), "--out",
                                            str(scratch / EXPORT_OUT), "--format", "onnx"], scratch), scratch)
        bundle = as_the_user_sees_it(run(["export", str(scratch / "results" / "42"), "--out",
                                          str(scratch / BUNDLE_OUT)], scratch), scratch)
        signal = as_the_user_sees_it(run(["signal", "--bundle", str(scratch / "results" / "42" / "bundle"),
                                          "--data_path", DATA], scratch), scratch)
    readme = README.read_text(encoding="utf-8")
    updated = replace_section(readme, "train", f"```\n{train}\n```\n\n{paragraph}\n")
    updated = replace_section(updated, "preprocess", f"```\n{prepare}\n```\n")
    updated = replace_section(updated, "export", f"```\n{exported}\n```\n")
    updated = replace_section(updated, "bundle", f"```\n{bundle}\n```\n")
    updated = replace_section(updated, "signal", f"```\n{signal}\n```\n")
    if args.check:
        print(updated)
        return 0
    tmp = README.with_name(".README.md.tmp")
    tmp.write_text(updated, encoding="utf-8")
    os.replace(tmp, README)
    print(f"README.md: sample output regenerated ({'changed' if updated != readme else 'unchanged'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
