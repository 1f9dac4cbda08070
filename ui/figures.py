"""Plotly figures for the dashboard (no Streamlit here, so they can be tested and exported)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from explainers.base import Explanation
from explainers.render import COLORMAPS, upsample

_DIVERGING_SCALE = [[p, f"rgb{tuple(c)}"] for p, c in COLORMAPS["blue-white-red"]]


def _png_data_uri(image: np.ndarray) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def top_k_bar(predictions: Sequence[tuple[int, str, float]], height: int = 260) -> go.Figure:
    """Horizontal bar chart of the top-k labels, best on top."""
    labels = [f"{name} (#{idx})" for idx, name, _ in predictions][::-1]
    probs = [p for _, _, p in predictions][::-1]
    fig = go.Figure(
        go.Bar(
            x=probs, y=labels, orientation="h", text=[f"{p:.1%}" for p in probs],
            textposition="auto", marker_color="#4C78A8",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), title="Top predictions",
        xaxis=dict(range=[0, 1], tickformat=".0%"),
    )
    return fig


def interactive_heatmap(
    image: np.ndarray, exp: Explanation, limit: float, opacity: float = 0.55, max_side: int = 160
) -> go.Figure:
    """The photo with the signed map on top; hovering shows the value (and segment weight)."""
    h, w = image.shape[:2]
    step = max(1, int(np.ceil(max(h, w) / max_side)))  # keep the payload small
    heat = upsample(exp.heatmap, (h, w), "bilinear")[::step, ::step]
    ys = np.arange(0, h, step)
    xs = np.arange(0, w, step)
    if exp.segments is not None and exp.segment_weights is not None:
        seg = exp.segments[::step, ::step]
        custom = np.stack([seg, exp.segment_weights[seg]], axis=-1)
        hover = "segment %{customdata[0]}: weight %{customdata[1]:+.4f}<extra></extra>"
    else:
        custom = heat[..., None]
        hover = "row %{y}, col %{x}: %{customdata[0]:+.4g}<extra></extra>"
    fig = go.Figure()
    fig.add_trace(go.Image(source=_png_data_uri(image), hoverinfo="skip"))  # PNG, not 150k numbers
    fig.add_trace(
        go.Heatmap(
            z=heat, x=xs, y=ys, customdata=custom, hovertemplate=hover, opacity=opacity,
            colorscale=_DIVERGING_SCALE, zmin=-limit, zmax=limit, zmid=0,
            colorbar=dict(title=dict(text="weight"), thickness=12),
        )
    )
    fig.update_layout(
        height=480, margin=dict(l=0, r=0, t=30, b=0),
        title=f"{exp.method} — {exp.label_name}",
        xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
    )
    return fig


def curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, x_title: str,
           y_title: str) -> go.Figure:
    """Simple multi-line chart (deletion/insertion or convergence curves)."""
    fig = go.Figure()
    for name, (x, y) in series.items():
        fig.add_trace(go.Scatter(x=list(x), y=list(y), mode="lines", name=name))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), title=title,
                      xaxis_title=x_title, yaxis_title=y_title)
    return fig


def matrix(values: np.ndarray, names: Sequence[str], title: str, zmin: float = -1.0, zmax: float = 1.0) -> go.Figure:
    """An annotated square matrix (method agreement)."""
    values = np.asarray(values, dtype=float)
    fig = go.Figure(
        go.Heatmap(
            z=values, x=list(names), y=list(names), zmin=zmin, zmax=zmax, colorscale=_DIVERGING_SCALE,
            text=[[f"{v:.2f}" for v in row] for row in values], texttemplate="%{text}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), title=title,
                      yaxis=dict(autorange="reversed"))
    return fig
