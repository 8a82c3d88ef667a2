"""A fork server ("zygote") for the tests' subprocess Jupyter servers.

Starting ``python -m jupyter_server`` costs seconds of CPU before the server does anything:
most of it is imports (jsonschema's format checkers alone build a grammar at import). A test
worker starts dozens of servers, so it starts one long-lived child of the same interpreter and
environment instead, which imports those modules once, starts no thread and no event loop, and
forks a server for each request. The forked child does what ``python -m <app> …`` does: a
session of its own, the request's environment, working directory, log file and ``sys.argv``,
the app's ``__main__`` run as ``__main__``, and an ordinary interpreter exit.

A module that reads the environment while it is imported would keep the fork server's values
in every server forked from it. Such modules are not preloaded (``NOT_PRELOADED``), and the
fork server notes every variable read while it preloads: a request whose environment differs
in one of them is refused, and the server starts the plain way (with a logged warning naming it).

A request whose ``PYTHONPATH`` puts folders before the fork server's (a test giving its server
a ``sitecustomize`` that changes what the operating system tells it) is forked too: the child
puts those folders where the interpreter would (after its working folder) and runs their
``sitecustomize`` as ``site`` does at start-up, before the app. The preloaded modules are
imported by then: a folder with a module of one of their names is refused, and a
``sitecustomize`` must patch what it changes where it is looked up at call time (a module's
attribute, as ``fcntl.flock``), not a name a preloaded module bound at its import.

``JCS_TEST_FORK_SERVER=0`` starts every server the plain way.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import site
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import setproctitle

logger = logging.getLogger(__name__)

#: apps a request may run: ``python -m <app>`` for each
APPS = ("jupyter_server", "jupyterlab", "kernel_gateway")

#: what a real start of both apps imports (``python -X importtime`` on a server start), as
#: roots: each brings its own imports along
PRELOAD = [
    "jupyter_server.serverapp",
    "jupyter_server.extension.application",
    "jupyter_server.services.contents.handlers",
    "jupyter_server.services.kernels.handlers",
    "jupyter_server.services.sessions.handlers",
    "jupyter_server.nbconvert.handlers",
    "jupyter_server.view.handlers",
    "jupyter_server_terminals.app",
    "jupyter_lsp.serverextension",
    "jupyterlab",
    "jupyterlab_server",
    "IPython.paths",
    "ipykernel.kernelspec",
    "httpcore",
    "jinja2.ext",
    "jupyter_cocalc_sync.app",
    "jupyter_cocalc_sync.assignments.service",
    "jupyter_cocalc_sync.documents.manager",
    "jupyter_cocalc_sync.documents.text",
    "jupyter_cocalc_sync.execution.open_notebook",
    "jupyter_cocalc_sync.execution.service",
    "jupyter_cocalc_sync.handlers.actions",
    "jupyter_cocalc_sync.handlers.collaboration",
    "jupyter_cocalc_sync.handlers.execution",
    "jupyter_cocalc_sync.handlers.kernel_execute",
    "jupyter_cocalc_sync.handlers.rooms",
    "jupyter_cocalc_sync.handlers.services",
    "jupyter_cocalc_sync.handlers.stateless",
    "jupyter_cocalc_sync.history.service",
    "jupyter_cocalc_sync.pool.manager",
    "jupyter_cocalc_sync.rooms.registry",
    "jupyter_cocalc_sync.stateless",
    "jupyter_cocalc_sync.ydoc_api.extension",
]

#: modules a server start imports that keep, from the environment at their import, a value
#: that differs per server (each test server has Jupyter folders of its own): the forked
#: server imports them itself
NOT_PRELOADED = {
    # the LabApp's settings and workspaces folders default to the config folder then
    "jupyterlab.labapp": "JUPYTER_CONFIG_DIR",
    # notebook's app imports jupyterlab's
    "notebook.app": "JUPYTER_CONFIG_DIR",
    # the default database path is in the data folder then
    "jupyter_server_fileid.manager": "JUPYTER_DATA_DIR",
    # the template paths include the data folder then (imported by ours's exporter)
    "nbconvert.exporters.templateexporter": "JUPYTER_DATA_DIR",
}

#: the variables the interpreter itself reads at start-up: a request must match in all
INTERPRETER_PREFIX = "PYTHON"

#: how long the fork server may take to import ``PRELOAD`` (seconds; a few on a loaded machine)
PRELOAD_TIMEOUT_S = 120

#: the exit status given to a forked server whose fork server died before reporting it
UNKNOWN_STATUS = 255


# --- the fork server (this file run by the worker's interpreter) -----------------------------


class _RecordingEnviron(os._Environ[str]):
    """``os.environ`` that notes the variables read through it.

    Copying the whole environment (``items()``, ``copy()``) is not noted: the one module that
    does so at import (wsgiref's handlers, for CGI) never uses its copy in a Jupyter server."""

    read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        value: str = super().__getitem__(key)
        return value

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)

    def _unrecorded(self) -> dict[str, str]:
        data: dict[Any, Any] = self._data  # type: ignore[attr-defined]
        return {self.decodekey(k): self.decodevalue(v) for k, v in data.items()}

    def items(self) -> Any:
        return self._unrecorded().items()

    def copy(self) -> dict[str, str]:
        return self._unrecorded()


@contextlib.contextmanager
def _recording_environ() -> Iterator[set[str]]:
    """Note the variables read from ``os.environ`` within: the set yielded."""
    os.environ.__class__ = _RecordingEnviron
    try:
        yield _RecordingEnviron.read
    finally:
        os.environ.__class__ = os._Environ


def _preload() -> list[str]:
    """Import ``PRELOAD``; the names of those this environment does not have."""
    missing = []
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not name.startswith(error.name):
                raise  # a module that is there failed to import: a real error
            missing.append(name)
    return missing


def _search_path(value: str | None) -> list[str]:
    """The folders of a ``PYTHONPATH`` value, as the interpreter reads it."""
    return [folder for folder in (value or "").split(os.pathsep) if folder]


def added_path(env: dict[str, str], cwd: str) -> list[str] | None:
    """The folders ``env``'s ``PYTHONPATH`` puts before this process's (``[]`` if it is the
    same), absolute as the interpreter makes them (from ``cwd``); ``None`` if it is not this
    process's with folders put before it."""
    own, requested = _search_path(os.environ.get("PYTHONPATH")), _search_path(env.get("PYTHONPATH"))
    if len(requested) < len(own) or requested[len(requested) - len(own) :] != own:
        return None
    return [os.path.join(cwd, folder) for folder in requested[: len(requested) - len(own)]]


def _shadowing(folder: str) -> str | None:
    """A preloaded module (or ``sitecustomize``, run at this process's start) that a module in
    ``folder`` would have replaced, had ``folder`` been searched first."""
    for name, module in list(sys.modules.items()):
        if "." in name or getattr(module, "__file__", None) is None:
            continue
        shadow = Path(folder, name, "__init__.py"), Path(folder, f"{name}.py")
        if any(path.exists() and str(path) != module.__file__ for path in shadow):
            return name
    return None


def _refusal(request: dict[str, Any], read: set[str], cwd: str) -> str | None:
    """Why ``request`` cannot be forked from this process (``None`` if it can)."""
    env = request["env"]
    added = added_path(env, request["cwd"])
    differing = sorted(
        key
        for key in read | {k for k in {*env, *os.environ} if k.startswith(INTERPRETER_PREFIX)}
        if env.get(key) != os.environ.get(key) and not (key == "PYTHONPATH" and added is not None)
    )
    if differing:
        return f"the preloaded modules read {', '.join(differing)}, which the request sets apart"
    # ``python -m`` imports from its working folder first, then from ``PYTHONPATH``
    for folder in [request["cwd"]] * (request["cwd"] != cwd) + (added or []):
        if (name := _shadowing(folder)) is not None:
            return f"{folder} has a module {name} other than the preloaded one"
    return None


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall(json.dumps(message).encode() + b"\n")


def _serve(channel: socket.socket, read: set[str]) -> dict[str, Any] | None:
    """Fork a server per request, and report each one's exit, until the worker closes the
    channel (``None``); in a forked child, the request to run."""
    cwd = os.getcwd()
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ, None)
    received = b""
    while True:
        for key, _ in selector.select():
            if key.data is not None:  # a forked server exited
                pid = key.data
                selector.unregister(key.fileobj)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                _send(channel, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
                continue
            chunk = channel.recv(1 << 20)
            if not chunk:
                return None
            received += chunk
            *lines, received = received.split(b"\n")
            for line in lines:
                request: dict[str, Any] = json.loads(line)
                if (reason := _refusal(request, read, cwd)) is not None:
                    _send(channel, {"refused": request["id"], "reason": reason})
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    channel.close()
                    return request
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
                _send(channel, {"spawned": request["id"], "pid": pid})


def _run(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m <app> <args>`` (returns only by ``SystemExit``
    or an exception, as the app's ``__main__`` would end a fresh interpreter)."""
    added = added_path(request["env"], request["cwd"]) or []  # (against this process's)
    # (``ps`` and the process check would show the fork server's command line; set while the
    # environment is the fork server's, whose memory setproctitle takes for a longer title)
    setproctitle.setproctitle(" ".join([sys.executable, "-m", request["app"], *request["args"]]))
    os.setsid()
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.path[0] = request["cwd"]  # ``python -m`` puts its working folder first
    sys.path[1:1] = added  # then ``PYTHONPATH``'s folders (``_refusal`` checked its prefix)
    if added:  # as ``site`` does at start-up (the fork server ran none of theirs: ``_refusal``)
        site.execsitecustomize()
        if site.ENABLE_USER_SITE:
            site.execusercustomize()
    sys.argv = ["-m", *request["args"]]
    runpy.run_module(request["app"], run_name="__main__", alter_sys=True)


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    # imports resolve as ``python -m`` resolves them in this folder
    sys.path[0] = os.getcwd()
    try:
        with _recording_environ() as read:
            missing = _preload()
    # any error of any module's import: the worker starts its servers the plain way
    except Exception as error:
        _send(channel, {"failed": f"preloading failed: {error!r}"})
        return
    if len(os.listdir("/proc/self/task")) != 1:  # threads of Python's and of C libraries'
        _send(channel, {"failed": "the preloaded modules started threads: forking is unsafe"})
        return
    if taken := sorted(n for n in NOT_PRELOADED if n in sys.modules):
        _send(channel, {"failed": f"preloading imported {', '.join(taken)}"})
        return
    _send(channel, {"ready": os.getpid(), "missing": missing})
    try:
        request = _serve(channel, read)
    except KeyboardInterrupt:  # Ctrl-C in the terminal reaches the whole process group
        return
    if request is not None:
        _run(request)


# --- the worker's side ---------------------------------------------------------------------


class ForkedProcess:
    """A server forked by the fork server, with the part of ``subprocess.Popen``'s surface
    the tests use. It is the fork server's child: the fork server reports its exit status."""

    def __init__(self, fork_server: ForkServer, pid: int, args: list[str]) -> None:
        self._fork_server = fork_server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._fork_server.exit_status(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._fork_server.exit_status(self.pid, timeout=timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServerUnavailable(Exception):
    """The fork server cannot start this server (the reason is the message)."""


class ForkServer:
    """The worker's fork server: started on the first request, stopped by ``stop``."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        """Start the fork server with the environment and working folder of the first
        request (every test server's environment is this process's, but for its Jupyter
        folders)."""
        worker_end, server_end = socket.socketpair()
        self._channel = worker_end
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(server_end.fileno())],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=[server_end.fileno()],
        )
        server_end.close()
        self._lines = self._read_lines()
        self._channel.settimeout(PRELOAD_TIMEOUT_S)
        try:
            hello = next(self._lines, {"failed": "the fork server exited at start"})
        except TimeoutError:
            hello = {"failed": f"the fork server did not preload in {PRELOAD_TIMEOUT_S} s"}
        self._channel.settimeout(None)
        if "ready" not in hello:
            self.stop()
            raise ForkServerUnavailable(hello["failed"])
        self._changed = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._exits: dict[int, int] = {}
        self._alive = True
        self._next_id = 0
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="fork-server-reader", daemon=True)
        self._reader.start()

    def _read_lines(self) -> Iterator[dict[str, Any]]:
        received = b""
        while chunk := self._channel.recv(1 << 16):
            received += chunk
            *lines, received = received.split(b"\n")
            yield from (json.loads(line) for line in lines)

    def _read(self) -> None:
        for message in self._lines:
            with self._changed:
                if "exited" in message:
                    self._exits[message["exited"]] = message["returncode"]
                else:
                    request_id = message["spawned"] if "spawned" in message else message["refused"]
                    self._replies[request_id] = message
                self._changed.notify_all()
        with self._changed:
            self._alive = False
            self._changed.notify_all()

    @property
    def alive(self) -> bool:
        return self._alive and self.process.poll() is None

    def spawn(self, app: str, args: list[str], env: dict[str, str], cwd: str, log: Path) -> Any:
        """Fork ``python -m <app> <args>``: a ``ForkedProcess``."""
        with self._send_lock:
            self._next_id += 1
            request_id = self._next_id
            request = {"id": request_id, "app": app, "args": args, "env": env, "cwd": cwd}
            try:
                _send(self._channel, {**request, "log": str(log)})
            except OSError as error:
                raise ForkServerUnavailable(f"the fork server is gone: {error!r}") from error
        with self._changed:
            self._changed.wait_for(lambda: request_id in self._replies or not self._alive)
            reply = self._replies.pop(request_id, None)
        if reply is None:
            raise ForkServerUnavailable("the fork server exited")
        if "refused" in reply:
            raise ForkServerUnavailable(reply["reason"])
        return ForkedProcess(self, reply["pid"], [sys.executable, "-m", app, *args])

    def exit_status(self, pid: int, timeout: float | None) -> int | None:
        """``pid``'s exit status once it exits (``None`` if it runs after ``timeout``)."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or not self._alive, timeout)
            if pid in self._exits:
                return self._exits[pid]
            if self._alive:
                return None
        # the fork server is gone and the process is init's child: its status is lost
        import psutil

        try:
            psutil.Process(pid).wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            return None
        return UNKNOWN_STATUS

    def stop(self) -> None:
        """End the channel: the fork server exits (the servers it forked run on)."""
        try:
            self._channel.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the fork server closed its end already
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._channel.close()


_fork_server: ForkServer | None = None
#: why this worker starts servers the plain way, once it is known for good
_disabled: str | None = None


def enabled() -> bool:
    return os.environ.get("JCS_TEST_FORK_SERVER", "1") != "0"


def fork_server_pid() -> int | None:
    """The worker's fork server's pid, if one runs."""
    return _fork_server.process.pid if _fork_server is not None else None


def forkable(args: list[str]) -> str | None:
    """The app of ``args`` if they are ``<this interpreter> -m <app> …`` for an app in
    ``APPS``."""
    if len(args) >= 3 and args[0] == sys.executable and args[1] == "-m" and args[2] in APPS:
        return args[2]
    return None


def spawn(args: list[str], env: dict[str, str], log: Path, cwd: Path | None) -> Any:
    """Fork ``args`` (see ``forkable``) from the worker's fork server; ``None`` (with a
    logged warning) when it cannot, for the caller to start the plain way."""
    global _fork_server, _disabled
    app = forkable(args)
    assert app is not None, args
    if _disabled is not None:
        return None
    folder = str(cwd or os.getcwd())
    try:
        if _fork_server is None:
            # the interpreter's variables this process's: a start that sets others of its own
            # (a sitecustomize on its PYTHONPATH) is refused, not taken for every start after
            own = {k: v for k, v in env.items() if not k.startswith(INTERPRETER_PREFIX)}
            interpreter = {k: v for k, v in os.environ.items() if k.startswith(INTERPRETER_PREFIX)}
            _fork_server = ForkServer({**own, **interpreter}, folder)
        elif not _fork_server.alive:
            raise ForkServerUnavailable("the fork server exited")
        return _fork_server.spawn(app, args[3:], env, folder, log)
    except ForkServerUnavailable as error:
        if _fork_server is None or not _fork_server.alive:
            _disabled = str(error)
        # logged, not warned: this suite's warnings are errors, and this is not a failure
        logger.warning("starting a server the plain way: %s", error)
        return None


def stop() -> None:
    """Stop the worker's fork server (at the end of the session)."""
    global _fork_server
    if _fork_server is not None:
        _fork_server.stop()
        _fork_server = None


if __name__ == "__main__":
    main()
