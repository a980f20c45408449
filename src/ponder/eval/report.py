"""Write what an evaluation found: JSON, CSV, a scaling plot and a self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.eval.bank import SampleRow
from ponder.eval.datasets import Question
from ponder.eval.replay import Cell
from ponder.eval.stats import bootstrap_ci, paired_test
from ponder.tasks.base import Task


def table(cells: Mapping[tuple[str, int], Cell], seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    for (label, k), cell in sorted(cells.items(), key=lambda item: (item[0][0], item[0][1])):
        low, high = bootstrap_ci(cell.values, seed=seed)
        rows.append(
            {
                "strategy": label,
                "k": k,
                "questions": len(cell.values),
                "accuracy": cell.accuracy,
                "ci_low": low,
                "ci_high": high,
                "prompt_tokens": cell.prompt_tokens,
                "cached_prompt_tokens": cell.cached_tokens,
                "completion_tokens": cell.completion_tokens,
                "score_tokens": cell.score_tokens,
                "tokens": cell.tokens,
                "flops": cell.flops,
                "seconds": cell.seconds,
            }
        )
    return rows


def comparisons(
    cells: Mapping[tuple[str, int], Cell], baseline: str, k: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Each strategy at budget k against `baseline` at k = 1, paired on the same questions."""
    base = cells.get((baseline, 1))
    out = []
    if base is None:
        return out
    for (label, kk), cell in sorted(cells.items()):
        if kk != k or label in (baseline, "pass@k") or len(cell.values) != len(base.values):
            continue
        test = paired_test(cell.values, base.values, seed=seed)
        out.append(
            {
                "strategy": label,
                "k": k,
                "versus": f"{baseline}@1",
                "difference": test.difference,
                "ci_low": test.ci[0],
                "ci_high": test.ci[1],
                "p_bootstrap": test.p_bootstrap,
                "p_mcnemar": test.p_mcnemar,
            }
        )
    return out


def plot(rows: Sequence[dict[str, Any]], ceilings: Mapping[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    labels = sorted({r["strategy"] for r in rows})
    for label in labels:
        line = sorted((r for r in rows if r["strategy"] == label), key=lambda r: r["tokens"])
        xs = [r["tokens"] for r in line]
        style = {"linestyle": "--", "color": "black"} if label == "pass@k" else {}
        ax.plot(xs, [r["accuracy"] for r in line], marker="o", label=label, **style)
        ax.fill_between(xs, [r["ci_low"] for r in line], [r["ci_high"] for r in line], alpha=0.12)
    for name, ceiling in ceilings.items():
        if not math.isnan(ceiling):
            ax.axhline(ceiling, linestyle=":", linewidth=1, color="grey")
            ax.annotate(f"best-of-∞ ceiling [{name}]", (ax.get_xlim()[0], ceiling), fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("mean tokens per question (prompt + completion + scoring)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(
    out: Path,
    *,
    meta: dict[str, Any],
    rows: list[dict[str, Any]],
    paired: list[dict[str, Any]],
    verifiers: list[dict[str, Any]],
    questions: Sequence[Question],
    samples: Mapping[str, list[SampleRow]],
    task: Task,
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "results.json",
        "csv": out / "results.csv",
        "png": out / "scaling.png",
        "html": out / "report.html",
    }
    data = {"meta": meta, "results": rows, "paired": paired, "verifiers": verifiers}
    paths["json"].write_text(json.dumps(data, indent=2, default=str))
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["strategy"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, {v["scorer"]: v["ceiling"] for v in verifiers}, paths["png"])
    image = base64.b64encode(paths["png"].read_bytes()).decode()
    paths["html"].write_text(_html(meta, rows, paired, verifiers, image, questions, samples, task))
    return paths


def _cells(row: dict[str, Any], keys: Sequence[str]) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4g}"
        return html.escape(str(value))

    return "".join(f"<td>{fmt(row.get(k))}</td>" for k in keys)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(f"<tr>{_cells(r, keys)}</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(
    meta: dict[str, Any],
    rows: list[dict[str, Any]],
    paired: list[dict[str, Any]],
    verifiers: list[dict[str, Any]],
    image: str,
    questions: Sequence[Question],
    samples: Mapping[str, list[SampleRow]],
    task: Task,
) -> str:
    drill = []
    for q in questions:
        rows_q = samples.get(q.id, [])
        if not rows_q:
            continue
        right = sum(task.is_correct(r.answer, q.answer) for r in rows_q)
        items = "".join(
            f"<tr><td>{r.idx}</td><td>{html.escape(str(r.answer))}</td>"
            f"<td>{'✓' if task.is_correct(r.answer, q.answer) else '✗'}</td>"
            f"<td>{r.completion_tokens}</td>"
            f"<td>{html.escape(json.dumps({k: round(v, 4) for k, v in r.scores.items()}))}</td>"
            f"<td><details><summary>text</summary><pre>{html.escape(r.text)}</pre></details></td></tr>"
            for r in rows_q
        )
        trees = "".join(
            f'<a href="{html.escape(p.name)}">search tree</a> '
            for p in sorted(Path(meta.get("out", ".")).glob(f"tree-{q.id}*.html"))
        )
        drill.append(
            f"<details><summary>{html.escape(q.id)}: gold {html.escape(q.answer)}, "
            f"{right}/{len(rows_q)} samples right</summary><p>{html.escape(q.question)}</p>"
            f"{trees}<table><tr><th>#</th><th>answer</th><th>ok</th><th>tokens</th>"
            f"<th>scores</th><th></th></tr>{items}</table></details>"
        )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
        "pre{white-space:pre-wrap;max-width:900px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>ponder eval</title>"
        f"<style>{style}</style></head><body><h1>ponder eval</h1>"
        f"<pre>{html.escape(json.dumps(meta, indent=2, default=str))}</pre>"
        f"<h2>Accuracy vs compute</h2><img src='data:image/png;base64,{image}' width='900'>"
        f"<h2>Strategies x budget</h2>{_table(rows)}"
        f"<h2>Paired comparisons</h2>{_table(paired)}"
        f"<h2>Verifier false positives</h2>{_table(verifiers)}"
        f"<h2>Questions</h2>{''.join(drill)}</body></html>"
    )
