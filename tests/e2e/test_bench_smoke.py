"""`make bench` at a tiny size, profiled and with two replicas: every step runs start to finish, the JSON has every
figure, the pipeline step's profile of each service and the steps measured again with two replicas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--smoke",
            "--no-progress",
            "--profile",
            "--replicas",
            "2",
            "--brokers",
            "3",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (report_path,) = tmp_path.glob("bench-smoke-*.json")
    report = json.loads(report_path.read_text())
    steps = report["steps"]
    assert set(steps) == {
        "floor",
        "http_ingest",
        "raw_topic_ingest",
        "pipeline",
        "webhooks",
        "latency",
        "latency_target",
        "gateway_results",
        "audit_trail",
        "rebuild",
        "register_extract",
        "http_ingest_2_replicas",
        "pipeline_2_replicas",
        "pipeline_cluster",
    }
    assert steps["floor"]["floor_per_s"] > 0 and steps["http_ingest"]["accepted"] > 0
    assert steps["pipeline"]["events_per_s"] > 0 and 0 < steps["pipeline"]["ratio_to_floor"] < 10
    assert steps["latency"]["p99_ms"] > 0 and steps["gateway_results"]["p99_ms"] > 0
    # every answer of the gateway with the trail has its entry (those of the one without have none)
    trail = steps["audit_trail"]
    assert trail["answers_with_trail"] > 0 and trail["entries_written"] >= trail["answers_with_trail"]
    assert trail["p99_ms_with"] > 0 and trail["p99_ms_without"] > 0
    assert trail["held_ms_p99_at_most"] is not None
    assert trail["held_ms_p50_at_most"] <= trail["held_ms_p99_at_most"]
    # an answer waits for its own batch's commit at least: the commit is part of the held time
    assert trail["commit_ms_p50_at_most"] is not None
    assert trail["commit_ms_p50_at_most"] <= trail["held_ms_p99_at_most"]
    assert 0 < trail["quiet_commit_ms"]["p50"] <= trail["quiet_commit_ms"]["p99"]
    assert 0 < trail["busy_cores_commit_ms"]["p50"] <= trail["busy_cores_commit_ms"]["p99"]
    assert steps["latency_target"]["offered_events_per_s"] > steps["latency"]["offered_events_per_s"]
    assert steps["rebuild"]["records"] >= 15_000
    # the rebuild ran as its own process with its fold workers (their memory counted with it), under 2 GB
    assert steps["rebuild"]["workers"] == os.cpu_count()
    assert 0 < steps["rebuild"]["resources"]["rebuild"]["rss_mb_max"] < 2048
    # --replicas 2: HTTP ingest spread over two ingest processes, the pipeline through two of each service
    assert (
        steps["http_ingest_2_replicas"]["replicas"] == 2 and steps["http_ingest_2_replicas"]["accepted"] > 0
    )
    assert (
        steps["pipeline_2_replicas"]["replicas"] == 2
        and steps["pipeline_2_replicas"]["ledger_entries_total"] > 0
    )
    # --brokers 3: the pipeline on three brokers and a synchronous standby, as a ratio to the single node
    cluster = steps["pipeline_cluster"]
    assert cluster["brokers"] == 3 and cluster["ledger_entries_total"] > 0
    assert cluster["ratio_to_single_node"] == round(
        cluster["events_per_s"] / steps["pipeline"]["events_per_s"], 3
    )
    assert "9 pipeline, 3 brokers + sync standby" in result.stdout
    # a register extract receipted and folded; the malformed one answered with its bad rows refused
    extract = steps["register_extract"]
    assert extract["good"]["counts"]["accepted"] == extract["rows"] and extract["good"]["folded_seconds"] > 0
    assert extract["malformed"]["counts"]["rejected"] == extract["rows"] // 10
    assert extract["malformed"]["counts"]["unchanged"] == extract["rows"] - extract["rows"] // 10
    assert "8 register extract" in result.stdout
    hooks = steps["webhooks"]
    assert hooks["messages"] == steps["pipeline"]["ledger_entries_total"] > 0
    assert hooks["duplicates"] == 0 and hooks["refused_signatures"] == 0
    assert "3b webhooks" in result.stdout
    assert "3 pipeline, 2 replicas" in result.stdout
    assert "raw aiokafka floor" in result.stdout
    # progress when not on a terminal: a line as each step starts and completes
    for step in ("floor", "http_ingest", "raw_topic_ingest", "pipeline", "latency", "rebuild"):
        assert f"{step} done:" in result.stderr, result.stderr[-2000:]
    assert "step 1: the floor" in result.stderr
    assert steps["pipeline"]["ratio_to_floor"] == next(iter(steps["pipeline"].values()))  # the ratio first
    assert steps["http_ingest"]["client_errors_retried"] >= 0 and steps["http_ingest"]["events_not_sent"] == 0
    # the pipeline step profiled per service, and the dumps kept beside the JSON
    assert set(report["profile"]) == {"ingest", "measures", "contracts"}
    for summary in report["profile"].values():
        assert summary["profiled_cpu_seconds"] > 0 and summary["top_own_time"]
        assert 99 <= sum(summary["by_area_pct"].values()) <= 101
    assert all(Path(f).parent == tmp_path and Path(f).stat().st_size for f in report["profile_files"])
    assert "Profile of the pipeline step" in result.stdout
