"""The test suite keeps out of the user's Prefect: its flow runs, in this process and in the commands it
starts, go to a temporary ``PREFECT_HOME``, never to the user's database or the user's server.

Shown on a stand-in user (a ``HOME`` of its own, whose ``~/.prefect`` is the default home): pytest with
this suite's ``conftest.py`` runs a flow in process (on the test harness) and ``rltrader train`` in a
subprocess, as the suite does, and the user's home is left without a database, or any file; the same flow run without the conftest, the
control, writes one there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, SAMPLE_CSV
from prefect_records import database_path, prefect_flow_runs

from flows.server import prefect_home

INNER_TEST = textwrap.dedent('''
    import os, subprocess, sys
    from pathlib import Path


    def test_as_the_suite_runs_them(prefect_harness, tmp_path):
        from prefect import flow
        from prefect_records import database_path, prefect_flow_runs

        @flow(name="suite-in-process")
        def in_process() -> int:
            return 1

        assert in_process() == 1
        subprocess.run([sys.executable, "-m", "rltrader", "train", "--data_path", {sample!r}, "--profile", "smoke",
                        "--iterations", "1", "--total_timesteps", "1024", "--results_dir", str(tmp_path / "results"),
                        "--cache_dir", str(tmp_path / "cache"), "--settings_file", str(tmp_path / "settings.json"),
                        "--verbose", "0"], check=True)
        names = [run["name"] for run in prefect_flow_runs(database_path())]
        assert [name.split()[0] for name in names] == ["train"], names  # the command's run, recorded in the suite's home
''')

IN_PROCESS_FLOW = ("from prefect import flow\n\n@flow(name='outside-the-suite')\ndef f() -> int:\n    return 1\n\n"
                   "assert f() == 1\n")


def _as_a_user(user_home: Path) -> dict[str, str]:
    """A user's shell: their own HOME, no Prefect setting, none of this test run's variables."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PREFECT_", "RLTRADER_TEST_", "RLTRADER_CALIBRATION"))}
    return {**env, "HOME": str(user_home), "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "tests"),
                                                                          str(PROJECT_ROOT)])}


def test_this_run_uses_a_temporary_prefect_home_and_no_server_of_the_users():
    home = Path(os.environ["PREFECT_HOME"])
    assert home.name.startswith("rltrader-test-prefect-home-") and prefect_home() == home.resolve()
    assert home.resolve() != (Path.home() / ".prefect").resolve()
    assert "PREFECT_API_URL" not in os.environ and "PREFECT_PROFILES_PATH" not in os.environ


@pytest.mark.slow
def test_commands_run_as_the_suite_runs_them_leave_the_users_prefect_home_untouched(tmp_path):
    user_home = tmp_path / "user"
    user_home.mkdir()
    users_database = database_path(user_home / ".prefect")
    inner = tmp_path / "inner" / "test_inner.py"
    inner.parent.mkdir()
    inner.write_text(INNER_TEST.format(sample=str(SAMPLE_CSV)))
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "--rootdir", str(inner.parent),
                            "-o", "cache_dir=" + str(tmp_path / "pytest-cache"), str(inner)],
                           env=_as_a_user(user_home), cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert suite.returncode == 0, (suite.stdout + suite.stderr)[-3000:]
    assert "1 passed" in suite.stdout
    assert not users_database.exists(), prefect_flow_runs(users_database)
    assert not (user_home / ".prefect").exists()  # nor its result storage, profiles or settings

    # the control: the same user's flow outside the suite lands in their home, where the check above looked
    control = subprocess.run([sys.executable, "-c", IN_PROCESS_FLOW], env=_as_a_user(user_home), cwd=tmp_path,
                             capture_output=True, text=True, timeout=200)
    assert control.returncode == 0, control.stderr[-2000:]
    assert [run["name"] for run in prefect_flow_runs(users_database)] != []
