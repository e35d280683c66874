"""The hotspot chart: the top places as horizontal bars, this period against the previous one,
as PNG bytes.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), so it
is safe to run in a worker thread and never touches a GUI backend. The picture is 640 px wide
with large labels, so it reads on a phone at half size too.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from services.distributor.reports import RankedPlace

CURRENT = "#1f5fa8"
PREVIOUS = "#b9c9de"


def hotspot_chart(places: Sequence[RankedPlace], title: str) -> bytes:
    """PNG of the places' counts, highest at the top, each with the previous period's count
    as a light bar beneath it; a short note when there are none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(2.6, 0.5 * len(places) + 1.6)
    figure = Figure(figsize=(6.4, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if places:
        shown = list(reversed(places))
        labels = [f"{p.place}  {p.district}" for p in shown]
        rows = range(len(shown))
        axes.barh(
            [r - 0.2 for r in rows],
            [p.previous for p in shown],
            height=0.35,
            color=PREVIOUS,
            label="vorige 14 dagen",
        )
        bars = axes.barh(
            [r + 0.18 for r in rows],
            [p.count for p in shown],
            height=0.45,
            color=CURRENT,
            label="deze 14 dagen",
        )
        axes.bar_label(
            bars, labels=[f"{p.count} ({p.change})" for p in shown], padding=3, fontsize=12
        )
        axes.set_yticks(list(rows), labels)
        axes.tick_params(axis="y", labelsize=12, length=0)
        axes.set_xlim(0, max(max(p.count, p.previous) for p in shown) * 1.3 + 1)
        axes.xaxis.set_visible(False)
        for side in ("top", "right", "bottom"):
            axes.spines[side].set_visible(False)
        axes.legend(loc="lower right", fontsize=11, frameon=False)
    else:
        axes.text(0.5, 0.5, "Geen hotspots in deze periode", ha="center", va="center")
        axes.set_axis_off()
    figure.suptitle(title, fontsize=12, x=0.02, ha="left")
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def provisions_chart(months: Sequence[str], series: dict[str, list[int]], title: str) -> bytes:
    """PNG of provisions per month, one stacked bar per month, one colour per category (the
    evaluation report); a short note when there were none."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.8), dpi=96)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if months and any(sum(counts) for counts in series.values()):
        bottom = [0] * len(months)
        colours = ("#1f5fa8", "#e0652c", "#3a8f4b", "#8a4fb3", "#b08d1a", "#5b6770", "#c2185b")
        for index, (category, counts) in enumerate(sorted(series.items())):
            axes.bar(
                months,
                counts,
                width=0.6,
                bottom=bottom,
                label=category,
                color=colours[index % len(colours)],
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        axes.set_ylabel("Aantal mails")
        axes.tick_params(axis="x", labelsize=8, rotation=45)
        axes.set_xlim(-0.75, len(months) - 0.25)
        axes.legend(fontsize=7, loc="upper left", frameon=False)
    else:
        axes.text(0.5, 0.5, "Geen verstrekkingen in deze periode", ha="center", va="center")
        axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
