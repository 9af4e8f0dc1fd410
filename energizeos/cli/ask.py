"""``energizeos ask "QUESTION"`` and ``energizeos assistant eval``: the assistant from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="The alarm and performance assistant: evaluation.", no_args_is_help=True)


def _assistant(site_config: str, db: str, index: str):
    from energizeos.home import subdir
    from energizeos.knowledge.assistant import Assistant, LlmConfig
    from energizeos.records.db import init_db, make_engine
    from energizeos.site_config import load_site_config, report_settings

    cfg = load_site_config(site_config)
    engine = make_engine(db or cfg.records.db_url or None)
    init_db(engine)
    a = cfg.assistant
    llm = LlmConfig(a.llm_base_url, a.llm_model, a.llm_api_key_env, a.llm_timeout_s)
    return Assistant(engine, cfg.timezone, Path(index) if index else subdir("index"), llm, report_settings(cfg),
                     retrieval=a.retrieval)


def _when(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--now {text!r}: use ISO 8601 with an offset, "
                                 "e.g. 2025-07-15T19:00:00-07:00") from exc
    if value.tzinfo is None:
        raise typer.BadParameter(f"--now {text!r} has no UTC offset")
    return value


def ask(
    question: str = typer.Argument(..., help="The question, in plain words."),
    as_json: bool = typer.Option(False, "--json",
                                 help="One JSON object: answer, citations, grounded, mode, latency_ms."),
    site_config: str = typer.Option("config/sim_site.yaml", "--site-config"),
    db: str = typer.Option("", "--db", help="Records database URL (default: the site's)."),
    index: str = typer.Option("", "--index", help="Retrieval index directory (default: $ENERGIZEOS_HOME/index)."),
    now: str = typer.Option("", "--now", help="Answer as of this time (ISO 8601 with offset; default: now)."),
) -> None:
    """Ask the assistant about alarms and performance. It answers from the records and cites them."""
    from energizeos.site_config import SiteConfigError

    try:
        assistant = _assistant(site_config, db, index)
        answer = assistant.ask(question, _when(now))
    except (SiteConfigError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps({k: v for k, v in answer.to_json().items() if k != "question"}))
        return
    typer.echo(answer.answer)
    Console(stderr=True).print(f"[dim]{answer.mode}, {answer.latency_ms:.0f} ms, "
                               f"{'grounded' if answer.grounded else 'NOT grounded'}[/]")


@app.command("eval")
def evaluate(
    db: str = typer.Option("", "--db", help="A recorded incident day (default: record it now, ~1.5 min)."),
    index: str = typer.Option("", "--index", help="Retrieval index directory (default: a temp dir)."),
    as_json: bool = typer.Option(False, "--json", help="The scores and every question's result as JSON."),
) -> None:
    """Score the assistant on the evaluation set (knowledge/eval/incident_day.yaml): retrieval hit@3 for each
    retrieval mode, answer fact-recall, citations, ungrounded numbers and latency."""
    import tempfile

    from energizeos.knowledge.evaluate import run_evaluation

    with tempfile.TemporaryDirectory(prefix="energizeos-eval-") as tmp:
        result = run_evaluation(db or None, Path(index) if index else Path(tmp) / "index", Path(tmp),
                                progress=None if as_json else lambda msg: Console(stderr=True).print(msg))
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    s = result["summary"]
    typer.echo(f"questions {s['questions']}: hit@3 {s['hit_at_3']:.3f} (dense {s['hit_at_3_dense']:.3f}, bm25 "
               f"{s['hit_at_3_bm25']:.3f}), fact-recall {s['fact_recall']:.3f}, citation recall "
               f"{s['citation_recall']:.3f}, ungrounded answers {s['ungrounded_answers']}, latency p50 "
               f"{s['latency_p50_ms']:.0f} ms p95 {s['latency_p95_ms']:.0f} ms")
    for row in result["questions"]:
        if row["missing_facts"] or row["missing_citations"] or row["ungrounded"] or not row["no_record_ok"] \
                or (row["hit_at_3"] is not None and not row["hit_at_3"]["hybrid"]):
            typer.echo(f"  {row['id']}: missing facts {row['missing_facts']} citations {row['missing_citations']} "
                       f"hit@3 {row['hit_at_3']} ungrounded {row['ungrounded']} no-record ok {row['no_record_ok']}")

