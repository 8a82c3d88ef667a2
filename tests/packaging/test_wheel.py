"""The built wheel carries the JupyterLab extension: installed in a fresh virtual environment
(no node involved), ``jupyter labextension list`` shows it enabled.

Minutes (a wheel build, with the frontend, and a venv): not in the default ``pytest`` run;
``tests/run.sh`` runs it (every folder of ``tests/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CHECKOUT = Path(__file__).resolve().parents[2]


def run(command: list[str], **kwargs: object) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, (
        f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def test_the_wheel_installs_the_frontend_extension_enabled(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(CHECKOUT)])
    (wheel,) = wheels.glob("jupyter_cocalc_sync-*.whl")

    # the environment's packages are seen (no download of JupyterLab), this checkout is not
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH")}
    env["PATH"] = str(env_dir / "bin")  # no node (nor anything else) to run
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", str(wheel)], env=env
    )

    # ``jupyter labextension list`` (its script lives with the system's JupyterLab)
    labextension = "from jupyterlab.labextensions import main; main()"
    listed = run([str(python), "-c", labextension, "list"], env=env)
    (line,) = [line for line in listed.splitlines() if "jupyter-cocalc-sync" in line]
    assert "enabled" in line and "OK" in line, listed
    assert str(env_dir) in listed  # from the venv, not from an install elsewhere
    shared = env_dir / "share" / "jupyter" / "labextensions" / "jupyter-cocalc-sync"
    assert (shared / "package.json").is_file() and any((shared / "static").glob("*.js"))
