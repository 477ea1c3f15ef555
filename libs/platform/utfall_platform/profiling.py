"""Opt-in CPU profiles of a running service, for `make bench-profile`.

With UTFALL_PROFILE_DIR set, SIGUSR1 starts cProfile in the service's event-loop thread and the next SIGUSR1
stops it and writes `<dir>/<service>-<n>.pstats`, so a benchmark can profile exactly one of its steps.
cProfile rather than a sampling profiler: py-spy 0.4 cannot attach to this machine's pyenv interpreter
("Failed to find python version from target process"). cProfile's per-call overhead inflates call-heavy code,
so read its shares as a ranking, not as the share of an unprofiled run.
"""

from __future__ import annotations

import cProfile
import logging
import os
import signal
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)


class SignalToggledProfiler:
    def __init__(self, service: str, directory: Path) -> None:
        self.service = service
        self.directory = directory
        self.profile: cProfile.Profile | None = None
        self.written = 0

    def toggle(self, _signum: int = signal.SIGUSR1, _frame: FrameType | None = None) -> None:
        if self.profile is None:
            self.profile = cProfile.Profile()
            self.profile.enable()
            return
        self.profile.disable()
        self.written += 1
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.service}-{self.written}.pstats"
        self.profile.dump_stats(path)
        self.profile = None
        log.warning("profile written to %s", path)


def install_from_environment(service: str) -> SignalToggledProfiler | None:
    directory = os.environ.get("UTFALL_PROFILE_DIR")
    if not directory:
        return None
    profiler = SignalToggledProfiler(service, Path(directory))
    signal.signal(signal.SIGUSR1, profiler.toggle)
    return profiler
