"""The package's log lines go where the server's go, with its level, format and time.

Every module logs to ``logging.getLogger(__name__)``, under ``jupyter_cocalc_sync``. Those
loggers have no handler of their own: without this, Python's last-resort handler printed their
warnings bare (no level, no time) and dropped their INFO lines.
"""

from __future__ import annotations

import logging

PACKAGE_LOGGER = logging.getLogger("jupyter_cocalc_sync")


def log_through(server_log: logging.Logger) -> None:
    """Send the package's log lines to ``server_log``'s handlers, at its level.

    The handlers are shared, not copied, and replace those of an earlier server of this
    process (tests start many); the lines still propagate to the root logger, so whatever
    watches it (pytest's capture) sees them too.
    """
    for handler in list(PACKAGE_LOGGER.handlers):
        PACKAGE_LOGGER.removeHandler(handler)
    for handler in server_log.handlers:
        PACKAGE_LOGGER.addHandler(handler)
    PACKAGE_LOGGER.setLevel(server_log.getEffectiveLevel())
