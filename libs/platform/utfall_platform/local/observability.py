"""`make run-observability`: a real Prometheus (Debian's package) scraping the stack `make run` started,
with Utfall's alert rules loaded. Grafana with the provisioned dashboards comes with deploy/compose.yaml."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import yaml

from .paths import repo_root, state_dir
from .procs import spawn, terminate


def service_ports() -> dict[str, int]:
    """The ports `make run` used: UTFALL_<SERVICE>_PORT, as the stack reads them."""
    from .stack import DEFAULT_PORTS

    return {
        name: int(os.environ.get(f"UTFALL_{name.upper()}_PORT", port)) for name, port in DEFAULT_PORTS.items()
    }


def local_config(path: Path, ports: dict[str, int]) -> Path:
    """deploy/prometheus/prometheus.yml with the scrape targets on these ports and the rules by absolute path."""
    deploy = repo_root() / "deploy" / "prometheus"
    config = yaml.safe_load((deploy / "prometheus.yml").read_text())
    config["rule_files"] = [str(deploy / name) for name in config.get("rule_files", [])]
    for job in config["scrape_configs"]:
        for target in job.get("static_configs", []):
            service = target.get("labels", {}).get("service")
            if service in ports:
                target["targets"] = [f"127.0.0.1:{ports[service]}"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit(
            "Prometheus is not installed: apt-get install prometheus (scripts/bootstrap.sh --system)"
        )
    data = state_dir() / "prometheus"
    data.mkdir(parents=True, exist_ok=True)
    ports = service_ports()
    config = local_config(data / "prometheus.yml", ports)
    port = int(os.environ.get("UTFALL_PROMETHEUS_PORT", 9090))
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
        f"Prometheus on http://127.0.0.1:{port}/ scraping "
        + ", ".join(f"{name} :{p}" for name, p in ports.items())
        + " (alerts: /alerts). Ctrl-C stops it.",
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
