#!/usr/bin/env bash
# Installs what Utfall needs on a fresh machine: uv, the locked Python environment, Kafka's jars and Keycloak
# (Maven Central). With --system (CI, or a root shell) it also installs missing Debian packages: Java 17, Maven,
# Chromium (browser tests), Prometheus (promtool), docker-compose (config checks), wrk (the gateway
# benchmark's load generator), kcat (a third-party Kafka client the tests use; see scripts/kcat), gettext
# (msgfmt checks the pages' message catalogues) and npm (axe-core for the accessibility tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--system" ]]; then
  need=()
  command -v java >/dev/null || need+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  command -v chromium >/dev/null || need+=(chromium)
  command -v promtool >/dev/null || need+=(prometheus)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v wrk >/dev/null || need+=(wrk)
  command -v kcat >/dev/null || need+=(kcat)
  command -v msgfmt >/dev/null || need+=(gettext)
  command -v npm >/dev/null || need+=(nodejs npm)
  if ((${#need[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "installing Debian packages: ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q >/dev/null || true
      apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
    else
      echo "missing system packages (install them): ${need[*]}" >&2
    fi
  fi
fi

PY="${UTFALL_PYTHON:-$(command -v python3.11 || command -v python3)}"
if command -v uv >/dev/null; then
  UV=(uv)
else
  if ! "$PY" -m uv --version >/dev/null 2>&1; then
    echo "installing uv from PyPI"
    "$PY" -m pip install -q --disable-pip-version-check uv || "$PY" -m pip install -q --user uv
  fi
  UV=("$PY" -m uv)
fi
"${UV[@]}" sync --frozen --python "$PY" --quiet
"${UV[@]}" run --frozen --no-sync python -m utfall_platform.local.kafka fetch >/dev/null
# Keycloak (the local identity provider, Maven Central), unpacked and built once; it needs Java 21 or newer
"${UV[@]}" run --frozen --no-sync python -m utfall_platform.local.keycloak fetch >/dev/null
# axe-core (npm), which the browser tests inject into the real page to check WCAG 2.1 AA
if command -v npm >/dev/null; then
  npm ci --prefix tests/browser --no-audit --no-fund --silent
else
  echo "npm is missing: the accessibility tests need it (scripts/bootstrap.sh --system installs it)" >&2
fi
echo "ready: $("${UV[@]}" run --frozen --no-sync python --version), Kafka jars and Keycloak cached in .cache/"
