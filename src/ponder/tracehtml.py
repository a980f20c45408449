"""A self-contained HTML page of a step-level search tree: every node with its step, score
and fate (kept, pruned, finished, dropped), the chosen path highlighted."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ponder.result import Node, Result

_COLORS = {
    "kept": "#2b6cb0", "pruned": "#a0aec0", "finished": "#2f855a",
    "dropped": "#c53030", "cut": "#b7791f", "open": "#4a5568",
}  # fmt: skip


def render_tree(result: Result) -> str:
    nodes = result.trace.nodes
    children: dict[int | None, list[Node]] = {}
    for node in nodes:
        children.setdefault(node.parent, []).append(node)
    chosen = set(result.trace.chosen_path)

    def item(node: Node) -> str:
        color = _COLORS.get(node.status, "#000")
        mark = " chosen" if node.id in chosen else ""
        score = "" if node.score is None else f" · score {node.score:.3f}"
        note = f" · {html.escape(node.note)}" if node.note else ""
        label = (
            f"<span class='node{mark}' style='border-color:{color}'>"
            f"<b style='color:{color}'>#{node.id} {node.status}</b>{score} · {node.tokens} tokens"
            f"{note}<pre>{html.escape(node.step.strip()) or '(question)'}</pre></span>"
        )
        kids = "".join(item(k) for k in children.get(node.id, []))
        return f"<li>{label}{f'<ul>{kids}</ul>' if kids else ''}</li>"

    roots = "".join(item(n) for n in children.get(None, []))
    style = (
        "body{font-family:sans-serif;margin:1.5em} ul{list-style:none;padding-left:1.6em;"
        "border-left:1px dotted #ccc} .node{display:inline-block;border:2px solid;"
        "border-radius:6px;"
        "padding:4px 8px;margin:4px 0;max-width:900px} .chosen{background:#fefcbf}"
        "pre{white-space:pre-wrap;margin:2px 0;font-size:12px}"
    )
    summary = {
        "strategy": result.strategy, "answer": result.answer, "decision": result.trace.decision,
        "notes": list(result.trace.notes), "usage": result.usage.to_dict(),
    }  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>ponder search tree</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(result.strategy)} search tree</h1>"
        f"<p>{html.escape(result.question)}</p>"
        f"<pre>{html.escape(json.dumps(summary, indent=2))}</pre><ul>{roots}</ul></body></html>"
    )


def write_trace_html(result: Result, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_tree(result), encoding="utf-8")
    return target
