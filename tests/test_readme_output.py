"""``scripts/readme_output.py``: the README's sample output, pasted from a real run."""

from __future__ import annotations

from pathlib import Path

import pytest


def _readme_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_output", Path(__file__).parent.parent / "scripts"
                                                  / "readme_output.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_output_elides_middle_iterations_and_writes_scratch_paths_as_the_defaults(tmp_path):
    script = _readme_script()
    lines = [f"Iteration {i}/8 [explore] done: line {i}" for i in range(1, 9)]
    printed = "\n".join([*lines, "table", f"  best model  {tmp_path / 'results'}/42/best_model.zip",
                         f"  parquet   {tmp_path / 'cache'}/features/k/bars.parquet"]) + "\n"
    shown = script.as_the_user_sees_it(printed, tmp_path).splitlines()
    assert shown == [lines[0], lines[1], "...", lines[7], "table", "  best model  results/42/best_model.zip",
                     "  parquet   cache/features/k/bars.parquet"]


def test_readme_output_replaces_only_between_its_markers_and_the_readme_has_them():
    script = _readme_script()
    text = "intro\n<!-- readme_output:train -->\nold\n<!-- /readme_output:train -->\nrest\n"
    assert script.replace_section(text, "train", "new\n") == \
        "intro\n<!-- readme_output:train -->\nnew\n<!-- /readme_output:train -->\nrest\n"
    readme = script.README.read_text()
    for name in ("train", "preprocess", "export", "bundle", "signal"):
        assert readme.count(f"<!-- readme_output:{name} -->") == readme.count(f"<!-- /readme_output:{name} -->") == 1
    with pytest.raises(SystemExit, match="markers"):
        script.replace_section("no markers\n", "train", "x")
