"""jupyter_server_ydoc's in-server API for other extensions, over this server's rooms."""
