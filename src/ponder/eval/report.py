"""What an evaluation found, written to `--out DIR`:

* `results.json`: the run (model, dataset, parameters, bank), one row per strategy and
  budget (accuracy, 95% interval, costs), the paired comparisons (sign-flip tests with Holm's
  correction), the verifier statistics (`verifiers.py`), and per question the answers,
  votes and scores of its samples and the answers of the live strategies;
* `results.csv`: the rows;
* `scaling.png` and `compute.png` (see `plots.py`);
* `trees/*.html`: the search tree of every live step-level run (`ponder.tracehtml`);
* `report.html`: one self-contained page (plots embedded as base64) with the tables and a
  drill-down per question: every candidate with its answer, whether it is right, its
  tokens and scores, the vote table, and links to the search trees.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ponder.eval.collect import QuestionData
from ponder.eval.lines import COVERAGE
from ponder.eval.replay import Cell, candidates_of
from ponder.eval.stats import INTERVAL, holm, interval, paired_test
from ponder.eval.verifiers import THRESHOLD, Rate, Verifier
from ponder.seeds import derive
from ponder.serialize import dumps, jsonable
from ponder.strategies.base import vote_table
from ponder.tasks.base import Task

DRILL_DOWN = 200
"""Questions whose sample texts go into report.html (the bank keeps them all)."""


def table(cells: Mapping[tuple[str, int], Cell], *, seed: int = 0) -> list[dict[str, Any]]:
    """One row per line and budget, pass@k first, then by label and k."""
    rows = []
    order = sorted(cells, key=lambda key: (key[0] != COVERAGE, key[0], key[1]))
    for label, k in order:
        cell = cells[(label, k)]
        low, high = interval(cell.values, seed=derive(seed, "interval", label, k))
        prompt, completion = cell.mean("prompt_tokens"), cell.mean("completion_tokens")
        rows.append(
            {
                "strategy": label,
                "k": k,
                "live": cell.live,
                "questions": len(cell.values),
                "samples": cell.mean("samples_used"),
                **_spread(cell.samples_used),
                "accuracy": cell.accuracy,
                "ci_low": low,
                "ci_high": high,
                "interval": INTERVAL,
                "prompt_tokens": prompt,
                "cached_prompt_tokens": cell.mean("cached_tokens"),
                "completion_tokens": completion,
                "scoring_tokens": cell.mean("scoring_tokens"),
                "tokens": prompt + completion,
                "decoded_tokens": prompt - cell.mean("cached_tokens") + completion,
                "flops": cell.mean("flops"),
                "seconds": cell.mean("seconds"),
            }
        )
    return rows


def _spread(used: Sequence[float]) -> dict[str, float]:
    """How many samples a line read per question (it varies for early-stopping rules)."""
    if not used:
        return {"samples_min": math.nan, "samples_median": math.nan, "samples_max": math.nan}
    values = np.asarray(used, dtype=float)
    return {
        "samples_min": float(values.min()),
        "samples_median": float(np.median(values)),
        "samples_max": float(values.max()),
    }


def _samples_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The lines that read fewer samples than their budget on some question."""
    stopping = [
        {
            "strategy": r["strategy"],
            "k": r["k"],
            "mean samples": r["samples"],
            "min": r["samples_min"],
            "median": r["samples_median"],
            "max": r["samples_max"],
            "mean completion tokens": r["completion_tokens"],
        }
        for r in rows
        if r["samples_min"] < r["k"]
    ]
    if not stopping:
        return ""
    return (
        "<h2>Samples used per question</h2><p>Lines that stop early read fewer samples than "
        "their budget k and are charged only those (and, for a trace halted mid-generation, "
        "only its tokens up to the halt); per question, the mean over its replayed subsets.</p>"
        + _table(stopping)
    )


def comparisons(
    cells: Mapping[tuple[str, int], Cell], baseline: str, *, seed: int = 0
) -> list[dict[str, Any]]:
    """Paired tests on the same questions (`stats.paired_test`: a sign-flip test and the
    interval that inverts it).

    * every line at each budget against `baseline` at the same budget;
    * every line at its largest budget against one sample (pass@1: each question's share
      of right samples), i.e. what the extra compute bought.

    `p_holm` is Holm's adjustment over every comparison of this list: the family a reader
    scans for significant ones, so reject on it, not on `p`.
    """
    out = []
    largest: dict[str, int] = {}
    for label, k in cells:
        largest[label] = max(largest.get(label, 0), k)
    one = cells.get((COVERAGE, 1))
    for (label, k), cell in sorted(cells.items()):
        if label == COVERAGE:
            continue
        against = []
        if label != baseline and (baseline, k) in cells:
            against.append((f"{baseline}@{k}", cells[(baseline, k)]))
        if one is not None and k == largest[label] and k > 1:
            against.append(("one sample (pass@1)", one))
        for name, other in against:
            if other.question_ids != cell.question_ids:
                continue
            test = paired_test(
                cell.values, other.values, seed=derive(seed, "paired", label, k, name)
            )
            out.append(
                {
                    "strategy": label,
                    "k": k,
                    "versus": name,
                    "questions": len(cell.values),
                    "difference": test.difference,
                    "ci_low": test.ci[0],
                    "ci_high": test.ci[1],
                    "p": test.p,
                    "p_exact": test.exact,
                    "questions_differing": test.differing,
                    "strategy_higher": test.a_better,
                    "versus_higher": test.b_better,
                }
            )
    for row, adjusted in zip(out, holm([row["p"] for row in out]), strict=True):
        row["p_holm"] = adjusted
    return out


def question_details(
    data: Sequence[QuestionData], task: Task, n: int, trees: Mapping[tuple[str, int, str], str]
) -> list[dict[str, Any]]:
    """Per question: its samples' answers, votes and scores, and the live results."""
    out = []
    for item in data:
        samples = item.samples[:n]
        bound = task.for_question(item.question.question)
        candidates = candidates_of(samples, bound)
        right = [bound.is_correct(c.answer, item.question.answer) for c in candidates]
        votes = [
            {
                "answer": v.answer,
                "count": v.count,
                "right": bound.is_correct(v.answer, item.question.answer),
                "members": list(v.members),
            }
            for v in vote_table(candidates)
        ]
        live = {
            f"{label}@{k}": {
                "answer": stored.data["answer"],
                "correct": stored.correct,
                "tokens": stored.data["usage"]["total_tokens"],
                "tree": trees.get((label, k, item.question.id)),
            }
            for (label, k), stored in sorted(item.live.items())
        }
        out.append(
            {
                "id": item.question.id,
                "question": item.question.question,
                "gold": item.question.answer,
                "right_samples": int(sum(right)),
                "samples": [
                    {
                        "idx": s.idx,
                        "seed": s.seed,
                        "answer": s.answer,
                        "right": ok,
                        "finish_reason": s.finish_reason,
                        "completion_tokens": s.usage.completion_tokens,
                        "mean_logprob": s.mean_logprob,
                        "scores": jsonable(s.scores),
                    }
                    for s, ok in zip(samples, right, strict=True)
                ],
                "votes": votes,
                "live": live,
            }
        )
    return out


def tree_name(label: str, k: int, question_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{label}-k{k}-{question_id}")
    return f"trees/{safe}.html"


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["strategy"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(payload: Mapping[str, Any], path: Path) -> Path:
    path.write_text(dumps(payload, indent=2), encoding="utf-8")
    return path


# HTML


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1e6:
            return f"{value:.3g}"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    names = list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in names) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _results_table(rows: Sequence[Mapping[str, Any]]) -> str:
    view = [
        {
            "strategy": r["strategy"] + (" (live)" if r["live"] else ""),
            "k": r["k"],
            "accuracy [95% CI]": f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            if not math.isnan(r["accuracy"])
            else "–",
            "questions": r["questions"],
            "prompt": r["prompt_tokens"],
            "cached prompt": r["cached_prompt_tokens"],
            "completion": r["completion_tokens"],
            "of which scoring": r["scoring_tokens"],
            "tokens": r["tokens"],
            "FLOPs": r["flops"],
            "seconds": r["seconds"],
        }
        for r in rows
    ]
    return _table(view)


def _drill_down(details: Sequence[Mapping[str, Any]], data: Sequence[QuestionData], n: int) -> str:
    texts = {item.question.id: item for item in data}
    parts = []
    for detail in details[:DRILL_DOWN]:
        item = texts[detail["id"]]
        sample_rows = []
        for s, sample in zip(detail["samples"], item.samples[:n], strict=True):
            scores = ", ".join(f"{k}={_fmt(v)}" for k, v in s["scores"].items())
            mark = "right" if s["right"] else "wrong"
            sample_rows.append(
                f"<tr class='{mark}'><td>{s['idx']}</td><td>{html.escape(str(s['answer']))}</td>"
                f"<td>{mark}</td><td>{s['completion_tokens']}</td>"
                f"<td>{html.escape(s['finish_reason'])}</td><td>{html.escape(scores)}</td>"
                f"<td><details><summary>text</summary><pre>{html.escape(sample.text)}</pre>"
                "</details></td></tr>"
            )
        votes = "".join(
            f"<tr class='{'right' if v['right'] else 'wrong'}'><td>{html.escape(v['answer'])}"
            f"</td><td>{v['count']}</td><td>{_fmt(v['right'])}</td>"
            f"<td>{html.escape(', '.join(map(str, v['members'])))}</td></tr>"
            for v in detail["votes"]
        )
        live = "".join(
            f"<li>{html.escape(name)}: {html.escape(str(r['answer']))} "
            f"({'right' if r['correct'] else 'wrong'}, {r['tokens']} tokens)"
            + (f" · <a href='{html.escape(r['tree'])}'>search tree</a>" if r["tree"] else "")
            + "</li>"
            for name, r in detail["live"].items()
        )
        parts.append(
            f"<details id='{html.escape(detail['id'])}'><summary><b>"
            f"{html.escape(detail['id'])}</b>: gold {html.escape(detail['gold'])} · "
            f"{detail['right_samples']}/{len(detail['samples'])} samples right</summary>"
            f"<p class='q'>{html.escape(detail['question'])}</p>"
            + (f"<ul>{live}</ul>" if live else "")
            + "<table><tr><th>answer</th><th>votes</th><th>right</th><th>samples</th></tr>"
            f"{votes}</table><table><tr><th>#</th><th>answer</th><th></th><th>tokens</th>"
            f"<th>finish</th><th>scores</th><th></th></tr>{''.join(sample_rows)}</table>"
            "</details>"
        )
    more = len(details) - DRILL_DOWN
    if more > 0:
        parts.append(f"<p>{more} more questions in results.json and the bank.</p>")
    return "".join(parts)


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(path.name)}' src='data:image/png;base64,{encoded}'>"


STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3} tr.right td:nth-child(3){color:#276749}"
    "tr.wrong td:nth-child(3){color:#9b2c2c} pre{white-space:pre-wrap;max-width:900px;margin:0}"
    "details{margin:.3em 0} .q{max-width:900px} img{max-width:100%}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px} dt{font-weight:600}"
)


def _comparison_table(paired: Sequence[Mapping[str, Any]]) -> str:
    view = [
        {
            "strategy": f"{r['strategy']}@{r['k']}",
            "versus": r["versus"],
            "questions": r["questions"],
            "differ (strategy higher / versus higher)": f"{r['questions_differing']} "
            f"({r['strategy_higher']} / {r['versus_higher']})",
            "mean difference [95% CI]": f"{r['difference']:+.3f} "
            f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
            "p": r["p"],
            "p exact": r["p_exact"],
            "Holm p": r["p_holm"],
        }
        for r in paired
    ]
    return _table(view)


def _rate(rate: Rate) -> str:
    if math.isnan(rate.rate):
        return "–"
    return (
        f"{rate.rate:.3f} [{rate.ci[0]:.3f}, {rate.ci[1]:.3f}] ({rate.accepted} of {rate.samples})"
    )


def _verifier_section(verifiers: Sequence[Verifier], n: int) -> str:
    if not verifiers:
        return "<p>none</p>"
    head = (
        "<p>Each scorer as a verifier that <i>accepts</i> a sample when its probability "
        f"(the scorer's score mapped to [0, 1]) is at least the threshold ({THRESHOLD} unless "
        "the table says otherwise). TPR: the share of right samples it accepts; FPR: the "
        "share of wrong samples it accepts (the false-positive rate of Stroebl et al. 2024); "
        "both per sample, pooled over questions, with 95% Wilson intervals widened for "
        "samples of one question being alike. <i>Resample until accepted</i>: their model "
        "of drawing samples until the verifier accepts one, from each question's share of "
        "right samples and these two rates; with at most N tries (none accepted: the last "
        "sample drawn is the answer) and with no limit, the ceiling however much is spent. "
        "<i>Best-of-N by score</i>: measured, the share of questions whose top-scored "
        "sample is right (ties share the credit, and samples without an answer count: so it "
        "can differ from the best-of-n line, which takes the earliest of tied samples and "
        "skips those without an answer). Accuracies are shares of questions, over "
        "the questions with a judged sample; unjudged samples (no score) are left out.</p>"
    )
    summary = [
        {
            "scorer": v.scorer,
            "threshold": v.threshold,
            "TPR [95% CI] (accepted of right)": _rate(v.tpr),
            "FPR [95% CI] (accepted of wrong)": _rate(v.fpr),
            "one sample": v.pass_at_1,
            f"resample until accepted, ≤{n} tries": v.resampling.get(n, math.nan),
            "resample until accepted, no limit": v.resampling_limit,
            f"best-of-{n} by score (measured)": v.best_of.get(n, math.nan),
            "unjudged samples": f"{v.unjudged} of {v.samples}",
            "questions left out (none judged)": v.questions - v.judged_questions,
        }
        for v in verifiers
    ]
    parts = [head, _table(summary)]
    for v in verifiers:
        by_k = [
            {
                "k": k,
                "resample until accepted, ≤k tries": v.resampling[k],
                "best-of-k by score (measured)": v.best_of.get(k, math.nan),
            }
            for k in sorted(v.resampling)
        ]
        curve = [{"accept when probability ≥": t, "TPR": tp, "FPR": fp} for t, tp, fp in v.curve]
        parts.append(
            f"<details><summary>{html.escape(v.scorer)}: accuracy by budget and the "
            f"TPR/FPR curve</summary>{_table(by_k)}{_table(curve)}</details>"
        )
    return "".join(parts)


def render_html(
    *,
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    paired: Sequence[Mapping[str, Any]],
    verifiers: Sequence[Verifier],
    details: Sequence[Mapping[str, Any]],
    data: Sequence[QuestionData],
    n: int,
    images: Sequence[Path],
) -> str:
    facts = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_fmt(v))}</dd>"
        for k, v in meta.items()
        if not isinstance(v, (dict, list))
    )
    notes = "".join(f"<li>{html.escape(str(x))}</li>" for x in meta.get("notes", []))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ponder eval: "
        f"{html.escape(str(meta.get('dataset', '')))}</title><style>{STYLE}</style></head><body>"
        f"<h1>ponder eval · {html.escape(str(meta.get('dataset', '')))} · "
        f"{html.escape(str(meta.get('model', '')))}</h1><dl>{facts}</dl>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "<h2>Accuracy against compute</h2>"
        + "".join(_image(p) for p in images)
        + "<h2>Strategies × budget</h2><p>Mean per question. Replayed lines: the mean over "
        "random k-subsets of the stored samples; pass@k: the unbiased estimator. Every "
        "interval is the same 95% interval of the mean over questions (the posterior of the "
        "mean under a Dirichlet prior with half a pseudo-question at 0 and at 1: Jeffreys' "
        "interval when each question is 0 or 1, a Bayesian bootstrap otherwise), so a line "
        "keeps its meaning from k = 1 to k = N.</p>"
        + _results_table(rows)
        + _samples_table(rows)
        + "<h2>Paired comparisons</h2><p>Same questions. Sign-flip permutation test of the "
        "mean difference (exact when few questions differ; with 0/1 outcomes it is McNemar's "
        "exact test), its 95% interval (the differences the test does not reject: it holds 0 "
        "exactly when p &gt; 0.05), and Holm's adjustment over all the comparisons below: "
        "call a difference significant when the Holm p is below 0.05.</p>"
        + _comparison_table(paired)
        + "<h2>Verifiers</h2>"
        + _verifier_section(verifiers, n)
        + "<h2>Questions</h2>"
        + _drill_down(details, data, n)
        + "</body></html>"
    )


def write_report(
    out: Path,
    *,
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    paired: Sequence[Mapping[str, Any]],
    verifiers: Sequence[Verifier],
    data: Sequence[QuestionData],
    task: Task,
    n: int,
    trees: Mapping[tuple[str, int, str], str],
) -> dict[str, Path]:
    from ponder.eval.plots import compute_plot, scaling_plot

    out.mkdir(parents=True, exist_ok=True)
    details = question_details(data, task, n, trees)
    title = f"{meta.get('dataset')} · {meta.get('model')} · N={n}"
    paths = {
        "json": write_json(
            {
                "meta": meta,
                "results": rows,
                "comparisons": paired,
                "verifiers": [v.to_dict() for v in verifiers],
                "questions": details,
            },
            out / "results.json",
        ),
        "csv": write_csv(rows, out / "results.csv"),
        "png": scaling_plot(rows, verifiers, out / "scaling.png", title),
        "compute": compute_plot(rows, out / "compute.png"),
    }
    page = render_html(
        meta=meta, rows=rows, paired=paired, verifiers=verifiers, details=details, data=data,
        n=n, images=[paths["png"], paths["compute"]],
    )  # fmt: skip
    paths["html"] = out / "report.html"
    paths["html"].write_text(page, encoding="utf-8")
    return paths
