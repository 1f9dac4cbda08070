"""Plotly figures for the dashboard (no Streamlit here, so they can be tested and exported)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from explainers.base import Explanation
from explainers.render import png_data_uri
from explainers.render import COLORMAPS, upsample
from explainers.text import escape_html

_DIVERGING_SCALE = [[p, f"rgb{tuple(c)}"] for p, c in COLORMAPS["blue-white-red"]]


def top_k_bar(predictions: Sequence[tuple[int, str, float]], height: int = 260) -> go.Figure:
    """Horizontal bar chart of the top-k labels, best on top (names only: class ids mean nothing
    to a person; the probability is written beside each bar, horizontally)."""
    labels = [escape_html(name) for _, name, _ in predictions][::-1]  # plotly renders HTML
    probs = [p for _, _, p in predictions][::-1]
    fig = go.Figure(
        go.Bar(
            x=probs, y=labels, orientation="h", text=[f"{p:.1%}" for p in probs],
            textposition="outside", textangle=0, cliponaxis=False, marker_color="#4C78A8",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height, margin=dict(l=10, r=60, t=30, b=10), title="Top predictions",
        xaxis=dict(range=[0, 1], tickformat=".0%"), uniformtext=dict(minsize=11, mode="show"),
    )
    return fig


def interactive_heatmap(
    image: np.ndarray, exp: Explanation, limit: float, cmap: str = "blue-white-red",
    view: dict | None = None, title: str = "", family: str = "", max_side: int = 160,
) -> go.Figure:
    """The same overlay as the static pictures (chosen colours and view), with a colour bar in
    the method's units and a hover that says what the number under the cursor means."""
    from explainers.legend import legend_for, plotly_colorscale
    from explainers.render import render_explanation

    view = dict(view or {"cmap": cmap})
    positive = bool(view.get("positive_only")) and view.get("style") != "segments"
    legend = legend_for(exp.label_name, family, limit, view.get("cmap", cmap), positive, title, exp.signed)
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / max_side)))  # keep the payload small
    heat = upsample(exp.heatmap, (h, w), "bilinear")[::step, ::step]
    ys = np.arange(0, h, step)
    xs = np.arange(0, w, step)
    shown = heat * legend.scale
    name = escape_html(exp.label_name)  # plotly renders HTML in hover text
    meaning = np.where(heat > 0, f"pushes towards {name}", np.where(heat < 0, f"pushes away from {name}", "no effect"))
    if exp.segments is not None and exp.segment_weights is not None:
        seg = exp.segments[::step, ::step]
        value = exp.segment_weights[seg] * legend.scale
        text = np.char.add(np.char.add(np.char.add("region ", seg.astype(str)), ": "),
                           np.char.mod("%+.3g", value))
        meaning = np.where(value > 0, f"pushes towards {name}",
                           np.where(value < 0, f"pushes away from {name}", "no effect"))
        if exp.segment_std is not None:  # the weight's standard error, and whether its sign is settled
            text = np.char.add(np.char.add(text, " ± "), np.char.mod("%.2g", exp.segment_std[seg] * legend.scale))
            meaning = np.char.add(meaning, np.where(exp.unsettled()[seg], " (sign not settled: could be either)", ""))
    else:
        text = np.char.mod("%+.3g", shown)
    text = np.char.add(np.char.add(np.char.add(text, f" {legend.units} — "), meaning), "")
    picture = render_explanation(image, exp, limit=limit, **{k: v for k, v in view.items() if k != "limit"})
    fig = go.Figure()
    fig.add_trace(go.Image(source=png_data_uri(picture), hoverinfo="skip"))  # PNG, not 150k numbers
    fig.add_trace(
        go.Heatmap(  # invisible: carries the hover text only
            z=shown, x=xs, y=ys, text=text, hovertemplate="%{text}<extra></extra>",
            colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]], showscale=False,
        )
    )
    lim = limit * legend.scale
    fig.add_trace(go.Scatter(  # the colour bar, with the same colours as the picture
        x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
        marker=dict(colorscale=plotly_colorscale(legend.cmap, upper_half=legend.one_sided and not positive),
                    cmin=0 if legend.one_sided else -lim, cmax=lim, color=[0], showscale=True,
                    colorbar=dict(title=dict(text=legend.units, side="right"), thickness=12,
                                  tickvals=[0, lim] if legend.one_sided else [-lim, 0, lim],
                                  ticktext=([f"0 {legend.low_text}", f"{legend.high_value} towards"] if legend.one_sided
                                            else [f"{legend.low_value} away", "0", f"{legend.high_value} towards"]))),
    ))
    fig.update_layout(
        height=480, margin=dict(l=0, r=0, t=30, b=0),
        title=escape_html(f"{title or exp.method} — {exp.label_name}"),
        xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
    )
    return fig


METHOD_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B",
                  "#9D755D", "#FF9DA6", "#BAB0AC", "#2F4B7C", "#A05195")


def method_colour(title: str) -> str:
    """One colour per method, the same on every chart: from its place in the registry's order.
    Anything that is not a method (e.g. "random order") is grey."""
    from explainers.base import methods

    titles = [s.title for s in methods().values()]
    if title not in titles:
        return "#888888"
    return METHOD_PALETTE[titles.index(title) % len(METHOD_PALETTE)]


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, x_title: str,
           y_title: str, hline: tuple[float, str] | None = None) -> go.Figure:
    """Simple multi-line chart (deletion/insertion or convergence curves), one fixed colour per
    method; ``hline`` = (y, text) draws a dashed threshold (the sanity check's pass line)."""
    fig = go.Figure()
    if hline is not None:
        fig.add_hline(y=hline[0], line_dash="dash", line_color="#666666", annotation_text=hline[1],
                      annotation_position="bottom right")
    for name, (x, y) in series.items():
        colour = method_colour(name)
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines", name=name,
                                 line=dict(color=colour, dash="dot" if colour == "#888888" else "solid")))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), title=title,
                      xaxis_title=x_title, yaxis_title=y_title)
    return fig


def matrix(values: np.ndarray, names: Sequence[str], title: str, zmin: float = -1.0, zmax: float = 1.0) -> go.Figure:
    """An annotated square matrix (method agreement): a diverging scale for correlations
    (−1 … 1), a sequential one for overlaps (``zmin`` ≥ 0, e.g. IoU on 0 … 1)."""
    from explainers.legend import plotly_colorscale

    values = np.asarray(values, dtype=float)
    scale = plotly_colorscale("viridis") if zmin >= 0 else _DIVERGING_SCALE
    fig = go.Figure(
        go.Heatmap(
            z=values, x=list(names), y=list(names), zmin=zmin, zmax=zmax, colorscale=scale,
            text=[[f"{v:.2f}" for v in row] for row in values], texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), title=title,
                      yaxis=dict(autorange="reversed"))
    return fig
