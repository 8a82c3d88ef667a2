"""Making the in-server API findable where extensions look for jupyter-collaboration.

Extensions look in two places: ``web_app.settings["jupyter_server_ydoc"]`` for the API object,
and the server's extension manager, where ``jupyter-ai-tools`` (and ``jupyterlab-chat``) check
that an extension named ``jupyter_server_ydoc`` is *enabled* before they use it
(``extension_manager.extensions["jupyter_server_ydoc"].enabled``, then its app's
``disable_rtc``). This extension replaces that one and keeps it disabled, so it lists an
enabled package of that name with no extension points: nothing is loaded or started for it,
and ``extension_apps["jupyter_server_ydoc"]`` is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jupyter_server.extension.manager import ExtensionPackage

from .extension import NAME

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


def real_ydoc_enabled(serverapp: ServerApp) -> bool:
    """Whether jupyter-collaboration's own ``jupyter_server_ydoc`` is enabled in this server
    (not the stand-in ``provide`` lists: that one has no extension points)."""
    present = serverapp.extension_manager.extensions.get(NAME)
    return present is not None and present.enabled and bool(present.extension_points)


def provide(serverapp: ServerApp, settings: dict[str, Any], api: object) -> bool:
    """Put ``api`` where extensions look for jupyter_server_ydoc; False (and nothing done) if
    the real one is enabled in this server."""
    manager = serverapp.extension_manager
    if real_ydoc_enabled(serverapp):
        return False
    settings[NAME] = api
    # (created disabled, which imports nothing, then marked enabled)
    package = ExtensionPackage(name=NAME, enabled=False)
    package.enabled = True
    manager.extensions[NAME] = package
    return True
