"""The extension loads into a real jupyter_server with its defaults."""

import pytest


async def test_extension_loads_and_sets_server_side_execution(jp_serverapp):
    app = jp_serverapp.web_app.settings["cocalc_sync"]
    assert app.max_output_length == 250_000
    page_config = jp_serverapp.web_app.settings["page_config_data"]
    assert page_config["serverSideExecution"] is True


async def test_the_extension_sets_the_pool_manager_and_nodelay_websocket(jp_serverapp):
    """jupyter_server reads only ``jpserver_extensions`` from jupyter_server_config.d, so the
    extension itself must set these (the test config, like an install, does not)."""
    from jupyter_cocalc_sync.pool.manager import PoolingKernelManager
    from jupyter_cocalc_sync.pool.websocket import KernelChannelsConnection

    assert isinstance(jp_serverapp.kernel_manager, PoolingKernelManager)
    assert jp_serverapp.kernel_websocket_connection_class is KernelChannelsConnection


@pytest.fixture
def user_chose_stock_manager(jp_server_config):
    jp_server_config["ServerApp"]["kernel_manager_class"] = (
        "jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager"
    )
    return jp_server_config


async def test_a_kernel_manager_the_user_chose_is_kept(user_chose_stock_manager, jp_serverapp):
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    assert type(jp_serverapp.kernel_manager) is AsyncMappingKernelManager
