"""The hotspot chart: a horizontal bar chart of the top postcodes, as PNG bytes.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), so it
is safe to run in a worker thread and never touches a GUI backend.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from services.distributor.reports import RankedPostcode


def hotspot_chart(postcodes: Sequence[RankedPostcode], title: str) -> bytes:
    """PNG of the given postcodes' counts, highest at the top; a short note when empty."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(2.5, 0.38 * len(postcodes) + 1.4)
    figure = Figure(figsize=(8, height), dpi=96)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if postcodes:
        labels = [f"{p.postcode} ({p.district})" for p in reversed(postcodes)]
        counts = [p.count for p in reversed(postcodes)]
        bars = axes.barh(labels, counts, color="#1f5fa8")
        axes.bar_label(bars, padding=3, fontsize=8)
        axes.set_xlabel("Aantal incidenten")
        axes.tick_params(axis="y", labelsize=8)
        axes.set_xlim(0, max(counts) * 1.15 + 1)
    else:
        axes.text(0.5, 0.5, "Geen incidenten in deze periode", ha="center", va="center")
        axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
