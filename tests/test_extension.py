"""The extension loads into a real jupyter_server with its defaults."""

import json

import pytest
from traitlets.config import Config


async def test_extension_loads_and_sets_server_side_execution(jp_serverapp):
    app = jp_serverapp.web_app.settings["cocalc_sync"]
    assert app.max_output_length == 250_000
    page_config = jp_serverapp.web_app.settings["page_config_data"]
    assert page_config["serverSideExecution"] is True


def test_config_file_enables_extension_and_pool_manager():
    from pathlib import Path

    cfg = (
        Path(__file__).parents[1]
        / "jupyter-config/jupyter_server_config.d/jupyter_cocalc_sync.json"
    )
    data = json.loads(cfg.read_text())
    assert data["ServerApp"]["jpserver_extensions"] == {
        "jupyter_cocalc_sync": True,
        "jupyter_server_ydoc": False,
    }
    assert data["ServerApp"]["kernel_manager_class"].endswith("PoolingKernelManager")


@pytest.mark.parametrize("name", ["max_output_length", "max_output_messages"])
def test_invalid_limits_are_refused_with_a_clear_error(name):
    from jupyter_cocalc_sync.app import CocalcSync

    with pytest.raises(Exception, match=name):
        CocalcSync(config=Config({"CocalcSync": {name: 0}}))
