"""A self-contained HTML page of a step-level search tree (no scripts, no external files).

Every node shows its step, its path score and step score, its tokens and its fate: kept
(extended), cut (kept, but its step hit the length limit before a delimiter), pruned,
finished or dropped (the scorer could not judge it). The chosen path is highlighted and its
full text shown on top; subtrees that were pruned or dropped start folded.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from ponder.result import Node, Result

_COLORS: Mapping[str, str] = {
    "kept": "#2b6cb0",
    "cut": "#b7791f",
    "finished": "#2f855a",
    "pruned": "#718096",
    "dropped": "#c53030",
    "open": "#4a5568",
}
_MEANING: Mapping[str, str] = {
    "kept": "extended further",
    "cut": "extended, but the step hit max_step_tokens before a delimiter",
    "finished": "a complete answer",
    "pruned": "not extended",
    "dropped": "the scorer could not judge it",
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#1a202c;max-width:1200px}
ul{list-style:none;padding-left:1.4em;margin:0;border-left:1px dotted #cbd5e0}
summary{cursor:pointer;list-style:none} summary::-webkit-details-marker{display:none}
.node{display:inline-block;border:2px solid;border-radius:6px;padding:3px 8px;margin:3px 0;
  max-width:950px;background:#fff}
.chosen{background:#fffbea;box-shadow:0 0 0 2px #d69e2e}
.head{font-size:12px} .head b{margin-right:.4em}
pre{white-space:pre-wrap;margin:2px 0;font-size:12px;font-family:ui-monospace,monospace}
.legend span{display:inline-block;margin-right:1.2em;font-size:13px}
.box{border:1px solid #e2e8f0;border-radius:6px;padding:.6em 1em;margin:.8em 0;background:#f7fafc}
table{border-collapse:collapse;font-size:13px} td{padding:1px 10px 1px 0;vertical-align:top}
"""


def render_tree(result: Result) -> str:
    """The page for `result` (a step-level strategy's; other traces have no nodes)."""
    trace = result.trace
    children: dict[int | None, list[Node]] = {}
    for node in trace.nodes:
        children.setdefault(node.parent, []).append(node)
    chosen = set(trace.chosen_path)

    def item(node: Node) -> str:
        color = _COLORS.get(node.status, "#000")
        facts = [f"<b style='color:{color}'>#{node.id} {html.escape(node.status)}</b>"]
        if node.score is not None:
            facts.append(f"path {node.score:.3f}")
        facts += [f"{html.escape(k)} {v:.3f}" for k, v in node.step_scores.items()]
        if node.parent is not None:
            facts.append(f"{node.tokens} tokens")
        if node.note:
            facts.append(html.escape(node.note))
        text = html.escape(node.step.strip()) if node.parent is not None else "(the question)"
        mark = " chosen" if node.id in chosen else ""
        label = (
            f"<span class='node{mark}' style='border-color:{color}'>"
            f"<span class='head'>{' · '.join(facts)}</span><pre>{text}</pre></span>"
        )
        kids = children.get(node.id, [])
        if not kids:
            return f"<li>{label}</li>"
        fold = "" if node.status in ("pruned", "dropped") and node.id not in chosen else " open"
        inner = "".join(item(k) for k in kids)
        return f"<li><details{fold}><summary>{label}</summary><ul>{inner}</ul></details></li>"

    counts: dict[str, int] = {}
    for node in trace.nodes[1:]:
        counts[node.status] = counts.get(node.status, 0) + 1
    legend = "".join(
        f"<span><b style='color:{_COLORS[s]}'>{s}</b> {counts.get(s, 0)}: {_MEANING[s]}</span>"
        for s in _MEANING
    )
    usage = result.usage
    rows = [
        ("answer", str(result.answer)),
        ("decision", trace.decision),
        ("nodes", str(len(trace.nodes))),
        (
            "tokens",
            f"{usage.decoded_tokens} decoded ({usage.prompt_tokens} prompt, "
            f"{usage.cached_prompt_tokens} of them reused from the cache, "
            f"{usage.completion_tokens} sampled) in {usage.calls} calls",
        ),
        ("parameters", ", ".join(f"{k}={v!r}" for k, v in trace.params.items())),
        *(("note", note) for note in trace.notes),
    ]
    table = "".join(f"<tr><td><b>{k}</b></td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    steps = [trace.nodes[i].step for i in trace.chosen_path[1:] if i < len(trace.nodes)]
    answer_text = html.escape("".join(steps).strip()) or "(no path)"
    roots = "".join(item(n) for n in children.get(None, []))
    title = html.escape(f"{result.strategy} search tree")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"<div class='box'><b>Question.</b> {html.escape(result.question)}</div>"
        f"<table>{table}</table>"
        f"<div class='box'><b>Chosen path</b><pre>{answer_text}</pre></div>"
        f"<p class='legend'>{legend}</p><ul>{roots}</ul></body></html>"
    )


def write_trace_html(result: Result, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_tree(result), encoding="utf-8")
    return target
