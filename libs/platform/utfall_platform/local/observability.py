"""`make run-observability`: a real Prometheus (Debian's package) scraping the stack `make run` started,
with Utfall's alert rules loaded. Grafana with the provisioned dashboards comes with deploy/compose.yaml."""

from __future__ import annotations

import shutil
import signal
import sys
import threading

from .paths import repo_root, state_dir
from .procs import spawn, terminate


def main() -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit(
            "Prometheus is not installed: apt-get install prometheus (scripts/bootstrap.sh --system)"
        )
    config = repo_root() / "deploy" / "prometheus" / "prometheus.yml"
    data = state_dir() / "prometheus"
    port = 9090
    proc = spawn(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
    )
    print(
        f"Prometheus on http://127.0.0.1:{port}/ scraping 127.0.0.1:8080-8083 (alerts: /alerts). Ctrl-C stops it.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set() and proc.poll() is None:
        stop.wait(1.0)
    terminate(proc)
    sys.exit(0 if proc.returncode in (0, None, -15) else proc.returncode or 0)


if __name__ == "__main__":
    main()
