"""The code server of a `materialize` or `demo` (launch.py `_CodeServer`): the definitions loaded
once for the command's launches, daemon and runs, on a socket only this user can reach, gone
with the command. (test_cli_commands.py checks the runs a real command files under it.)"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sales_platform.launch import CODE_LOCATION_MODULE, RunFailed, _CodeServer, launch

pytestmark = pytest.mark.integration

DAGSTER = str(Path(sys.executable).parent / "dagster")


def test_serves_the_jobs_on_a_private_socket_and_leaves_nothing(tmp_path):
    server = _CodeServer(tmp_path, {})
    try:
        # Only this user may enter the folder, so only this user can reach the socket.
        assert stat.S_IMODE(server.folder.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(server.socket.stat().st_mode)
        listed = subprocess.run(
            [DAGSTER, "job", "list", "--workspace", str(server.workspace)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        )
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert "daily_sales_job" in listed.stdout and "monthly_marts_job" in listed.stdout
        _launches_through_it(tmp_path / "instance", server)
    finally:
        server.close()
    assert server.process.poll() is not None
    assert not server.folder.exists()


def test_a_code_location_that_cannot_load_fails_the_command_naming_its_log(tmp_path, monkeypatch):
    folders = []
    real_mkdtemp = tempfile.mkdtemp

    def recorded(*args, **kwargs):
        folders.append(Path(real_mkdtemp(*args, **kwargs)))
        return str(folders[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    with pytest.raises(RunFailed, match="code server exited") as failed:
        _CodeServer(tmp_path, {"SALES_PLATFORM_SPARK_CONF": "nonsense"})
    assert str(tmp_path / "code-server.log") in str(failed.value)
    assert "not key=value" in (tmp_path / "code-server.log").read_text()
    # Nothing left behind by a server that never started: its folder went with it.
    assert len(folders) == 1 and not folders[0].exists()


def _launches_through_it(home: Path, server: _CodeServer) -> None:
    """The command's own launch (launch.py `launch`) files a run under the server's location;
    a job the location does not have fails with a one-line RunFailed."""
    import dagster as dg

    home.mkdir()
    queued = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}
    with dg.DagsterInstance.local_temp(str(home), overrides={"run_coordinator": queued}) as inst:
        run_id = launch(inst, "monthly_marts_job", {"sales_platform/test": "yes"}, server.workspace)
        run = inst.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags["sales_platform/test"] == "yes"
        assert run.remote_job_origin.location_name == CODE_LOCATION_MODULE
        with pytest.raises(RunFailed, match="could not launch no_such_job"):
            launch(inst, "no_such_job", {}, server.workspace)
