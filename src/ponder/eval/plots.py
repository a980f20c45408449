"""Scaling plots: accuracy against tokens, FLOPs and seconds per question.

`scaling.png`: accuracy vs mean tokens decoded per question (prompt tokens not found in
the KV cache + completion tokens, scoring included; log x), a 95% band per strategy,
pass@k dashed as the oracle ceiling, and per scorer (dotted) the accuracy of resampling
until it accepts, at most k tries, that its per-sample TPR and FPR imply (Stroebl et al.
2024; `verifiers.resampling_accuracy`). That curve is a model, not a measurement: it is
drawn at the cost of k samples (of best-of-n with that scorer where measured), which it
spends only when nothing is accepted sooner; the legend gives its limit with no limit on
tries.
`compute.png`: the same lines against FLOPs and against wall seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ponder.eval.lines import COVERAGE
from ponder.eval.verifiers import Verifier

Row = Mapping[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


def _lines(rows: Sequence[Row]) -> dict[str, list[Row]]:
    lines: dict[str, list[Row]] = {}
    for row in rows:
        if not math.isnan(row["accuracy"]):
            lines.setdefault(row["strategy"], []).append(row)
    return {label: sorted(line, key=lambda r: r["k"]) for label, line in lines.items()}


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    palette = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    others = [x for x in labels if x != COVERAGE]
    colors: dict[str, Any] = {label: palette(i % palette.N) for i, label in enumerate(others)}
    colors[COVERAGE] = "black"
    return colors


def _draw(ax: Any, lines: Mapping[str, list[Row]], colors: Mapping[str, Any], x: str) -> None:
    # many overlapping bands turn into one grey blur: fainter the more lines there are
    band = max(0.04, min(0.15, 0.6 / max(len(lines), 1)))
    for label, line in lines.items():
        xs = [r[x] for r in line]
        ys = [r["accuracy"] for r in line]
        coverage = label == COVERAGE
        ax.plot(
            xs, ys, marker="s" if line[0].get("live") else "o", markersize=4,
            linestyle="--" if coverage else "-", color=colors[label],
            label="pass@k (oracle ceiling)" if coverage else label,
        )  # fmt: skip
        ax.fill_between(
            xs, [r["ci_low"] for r in line], [r["ci_high"] for r in line],
            color=colors[label], alpha=band * (0.6 if coverage else 1.0), linewidth=0,
        )  # fmt: skip
    for r in lines.get(COVERAGE, []):
        ax.annotate(
            f"k={r['k']}", (r[x], r["accuracy"]), textcoords="offset points", xytext=(0, 6),
            ha="center", fontsize=7, color="black",
        )  # fmt: skip
    values = [r[x] for line in lines.values() for r in line]
    if values and min(values) > 0 and max(values) > min(values):
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log", base=2 if x != "flops" else 10)
        if x != "flops":
            plain = FuncFormatter(_short)
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_locator(LogLocator(base=2, subs=(1.5,)))
            ax.xaxis.set_minor_formatter(plain)
            ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)


def _short(value: float, _: Any = None) -> str:
    """Tick labels that stay short: 384, 1,536, 12k, 1.6M."""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:,.4g}"


def _plain_text(draw: Callable[P, R]) -> Callable[P, R]:
    """Draw on the file backend with text taken as text: a dataset or model name with `$`
    in it is no mathtext (which fails on `$\\sqrt{$` and would lose the report)."""

    @functools.wraps(draw)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> R:
        import matplotlib

        matplotlib.use("Agg")
        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return drawn


@_plain_text
def scaling_plot(
    rows: Sequence[Row], verifiers: Sequence[Verifier], path: Path, title: str = ""
) -> Path:
    import matplotlib.pyplot as plt

    lines = _lines(rows)
    colors = _colors(list(lines))
    fig, ax = plt.subplots(figsize=(12, 6))
    _draw(ax, lines, colors, "decoded_tokens")
    for v in verifiers:
        if math.isnan(v.resampling_limit):
            continue
        guide = lines.get(f"best-of-n[{v.scorer}]") or lines.get(COVERAGE, [])
        at = {r["k"]: r["decoded_tokens"] for r in guide}
        ks = [k for k in sorted(v.resampling) if k in at]
        color = colors.get(f"best-of-n[{v.scorer}]", "grey")
        ax.plot(
            [at[k] for k in ks], [v.resampling[k] for k in ks], linestyle=":", linewidth=1.6,
            color=color,
            label=f"model: resample until {v.scorer} accepts (P≥{v.threshold:g}), ≤k tries\n"
            f"(TPR {v.tpr.rate:.2f}, FPR {v.fpr.rate:.2f}; no limit on tries: "
            f"{v.resampling_limit:.2f})",
        )  # fmt: skip
    ax.set_xlabel(
        "mean tokens decoded per question (prompt not in the KV cache + completion, "
        "scoring included)"
    )
    ax.set_ylabel("accuracy (95% CI)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@_plain_text
def compute_plot(rows: Sequence[Row], path: Path) -> Path:
    import matplotlib.pyplot as plt

    lines = _lines(rows)
    colors = _colors(list(lines))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    _draw(left, lines, colors, "flops")
    left.set_xlabel("mean FLOPs per question (2 x parameters x decoded tokens)")
    left.set_ylabel("accuracy (95% CI)")
    _draw(right, lines, colors, "seconds")
    right.set_xlabel("mean seconds per question")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
