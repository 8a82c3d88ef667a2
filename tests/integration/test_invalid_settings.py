"""An invalid ``CocalcSync`` setting stops a real ``jupyter server`` at start with a message
naming the setting, as an invalid ``KernelPool`` value does (not a server running with the
extension half set up)."""

from __future__ import annotations

import pytest
from servers import ServerProcess, launch, server_command, stop_process

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_output_length", "-5"), ("autosave_delay", "abc"), ("history_keep_all_days", "-1")],
)
def test_an_invalid_setting_stops_the_server_naming_it(tmp_path, setting, value):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "state")
    server.write_config()
    command = server_command(server.python, server.app, server.port, server.token, root)
    # (its log is read here: the error it logs is the point)
    process = launch(
        [*command, f"--CocalcSync.{setting}={value}"],
        server.env(),
        server.log_path,
        watch_errors=False,
    )
    try:
        returncode = process.wait(90)
    finally:
        stop_process(process, 10)
    logged = server.log()
    assert returncode != 0, logged[-2000:]
    last_line = logged.strip().splitlines()[-1]
    assert "CocalcSync" in last_line and setting in last_line, logged[-2000:]
    assert "error linking extension" not in logged
