"""One PostgreSQL role and schema per user: what keeps users' stores apart in one database.

A single-user server runs its user's code, so whatever credentials it has, the user has. Each
user's server therefore connects as a role of its own, which owns one schema (where its
tables are created: the role's ``search_path`` is that schema) and has no privilege on any
other user's schema: it can neither read nor change another user's history, blobs or outputs.

``provision_user`` (run by the hub, with an administrator's URL) creates or updates the role
with a fresh password and returns the environment for the user's server;
``pre_spawn_hook(admin_url)`` does that for JupyterHub's spawner, and
``jupyter-cocalc-sync-pg provision --user alice`` from a shell.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

#: PostgreSQL truncates identifiers longer than this
MAX_IDENTIFIER = 63


def role_name(user: str, prefix: str = "cocalc_") -> str:
    """The role (and schema) of a hub user: readable, unique, a plain identifier."""
    plain = re.sub(r"[^a-z0-9_]", "_", user.lower())
    digest = hashlib.sha1(user.encode()).hexdigest()[:8]  # two names that differ by case
    return f"{prefix}{plain}"[: MAX_IDENTIFIER - 9] + f"_{digest}"


def user_url(admin_url: str, role: str) -> str:
    """The administrator's URL with the user's role instead, and no password in it."""
    params = {k: v for k, v in conninfo_to_dict(admin_url).items() if v is not None}
    params.pop("password", None)
    params["user"] = role
    return "postgresql://?" + urlencode(params, safe="/")


def provision_user(admin_url: str, user: str, *, password: str | None = None) -> dict[str, str]:
    """Create or update ``user``'s role and schema; the environment for their server
    (``COCALC_SYNC_STORE_URL`` and ``PGPASSWORD``: a new password each time)."""
    role = role_name(user)
    password = password or secrets.token_urlsafe(24)
    ident = sql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.transaction():
        # two hubs provisioning the same user at once do not race on CREATE ROLE
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"provision:{role}",))
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(
                verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {}"
            ).format(ident, sql.Literal(password))
        )
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(ident, ident)
        )
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident))
        conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(ident, ident))
        database = sql.Identifier(conn.info.dbname)
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, ident))
        # nobody shares tables through the public schema (PostgreSQL 15 does this already)
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    return {"COCALC_SYNC_STORE_URL": user_url(admin_url, role), "PGPASSWORD": password}


def pre_spawn_hook(admin_url: str) -> Callable[[Any], Awaitable[None]]:
    """``c.Spawner.pre_spawn_hook = pre_spawn_hook("postgresql://admin@db/cocalc")``: each
    user's server gets its own role, schema and credentials in its environment."""

    async def hook(spawner: Any) -> None:
        environment = await asyncio.to_thread(provision_user, admin_url, spawner.user.name)
        spawner.environment.update(environment)

    return hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jupyter-cocalc-sync-pg",
        description="PostgreSQL store administration for jupyter-cocalc-sync",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    provision = commands.add_parser(
        "provision", help="create or update a user's role and schema; prints its environment"
    )
    provision.add_argument("--user", required=True, help="the JupyterHub user name")
    provision.add_argument(
        "--admin-url",
        default="postgresql://",
        help="an administrator's connection (default: libpq's PG* environment variables)",
    )
    provision.add_argument("--json", action="store_true", help="print JSON, not KEY=value lines")
    args = parser.parse_args(argv)
    try:
        environment = provision_user(args.admin_url, args.user)
    except psycopg.Error as e:
        print(f"jupyter-cocalc-sync-pg: {e}".strip(), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(environment))
    else:
        for key, value in environment.items():
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
