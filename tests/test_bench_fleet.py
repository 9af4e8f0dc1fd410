"""The fleet benchmark runs: two sites for a few seconds into a real aggregator on PostgreSQL, every
record stored exactly once, and the result file has what run_all.py reads."""

from __future__ import annotations

import json

import pytest

from bench import bench_fleet


@pytest.mark.integration
def test_two_sites_for_four_seconds_store_exactly_what_they_sent(tmp_path):
    out = tmp_path / "fleet.json"
    rc = bench_fleet.main(["--sites", "2", "--seconds", "4", "--steps", "", "--json", str(out)])
    result = json.loads(out.read_text())
    assert rc == 0
    assert set(result) >= {"goal", "scenarios"} and not result["goal"]["met"]  # 2 sites are not the goal's 10
    (run,) = result["scenarios"]
    assert run["backend"] == "postgresql" and run["sites"] == 2 and run["exact"] and not run["problems"]
    assert run["records_sent"] == run["records_stored"] == 2 * 20  # 2 sites x 5 Hz x 4 s
    assert run["telemetry_rows_stored"] == 20 * run["records_sent"]
    for key in ("lag_db_s", "lag_ack_s"):
        assert run[key]["count"] == run["records_sent"] and 0 <= run[key]["median_s"] <= run[key]["p99_s"] < 5
    assert run["aggregator"]["batches"] >= run["records_sent"] and run["aggregator"]["rss_mb_max"] > 0
    assert run["points_per_s_stored"] > 0 and run["aggregator"]["cpu_pct_of_one_core"] > 0
