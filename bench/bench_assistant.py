"""The assistant's evaluation set as a benchmark: retrieval hit@3 per mode, fact recall, citation recall,
ungrounded answers and answer latency (p50/p95, offline, warm) over the recorded incident day.

    .venv/bin/python bench/bench_assistant.py [--db URL] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from energizeos.knowledge.evaluate import run_evaluation

GOALS = {"hit_at_3": 0.95, "fact_recall": 0.9, "ungrounded_answers": 0, "latency_p95_ms": 1000.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="", help="a recorded incident day (default: record it, about 80 s)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="energizeos-bench-assistant-") as tmp:
        result = run_evaluation(args.db or None, Path(tmp) / "index", Path(tmp), progress=print)
    s = result["summary"]
    s["goals"] = GOALS
    s["met"] = (s["hit_at_3"] >= GOALS["hit_at_3"] and s["fact_recall"] >= GOALS["fact_recall"]
                and s["ungrounded_answers"] == 0 and s["latency_p95_ms"] < GOALS["latency_p95_ms"])
    print(json.dumps(s))
    if args.json:
        Path(args.json).write_text(json.dumps(s, indent=2))


if __name__ == "__main__":
    main()
