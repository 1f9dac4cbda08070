"""The interactive heatmap's colour bar says what the picture can show (ui.figures, no Streamlit)."""
from __future__ import annotations

import numpy as np

from explainers.base import Explanation
from ui.figures import interactive_heatmap


def _bar(fig):
    return next(t for t in fig.data if t.type == "scatter").marker


def test_colour_bar_of_a_never_negative_map_starts_at_no_push():
    """Grad-CAM cannot push away (registry: signed=False): its bar runs from white at 0 to the
    towards colour; KernelSHAP's runs from −limit through 0 to +limit even on an all-positive map."""
    image = np.full((8, 8, 3), 128, np.uint8)
    heat = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    cam = _bar(interactive_heatmap(image, Explanation("gradcam", 0, "tiger cat", 0.4, heat), 1.0, family="cam"))
    assert (cam.cmin, cam.cmax) == (0, 1.0)
    assert cam.colorbar.ticktext[0] == "0 no push" and len(cam.colorbar.tickvals) == 2
    assert cam.colorscale[0][1] == "rgb(247, 247, 247)" and cam.colorscale[-1][1] == "rgb(178, 24, 43)"
    shap = _bar(interactive_heatmap(image, Explanation("kernel_shap", 0, "tiger cat", 0.4, heat), 1.0,
                                    family="perturbation"))
    assert shap.cmin == -100.0 and shap.colorbar.ticktext[0].endswith("away")  # points of probability
    assert shap.colorscale[0][1] == "rgb(33, 102, 172)"
    # on jet (no anchor at the middle) the half scale still starts at 0 and ends at 1, as Plotly needs
    jet = _bar(interactive_heatmap(image, Explanation("gradcam", 0, "tiger cat", 0.4, heat), 1.0, family="cam",
                                   view={"cmap": "jet"}))
    assert jet.colorscale[0][0] == 0 and jet.colorscale[-1] == (1.0, "rgb(128, 0, 0)")


def test_sanity_curves_draw_the_pass_line():
    from ui.figures import curves

    fig = curves({"Grad-CAM": ([0, 1, 2], [1.0, 0.6, 0.2])}, "t", "layers", "SSIM", hline=(0.5, "pass: ends below"))
    (line,) = fig.layout.shapes
    assert (line.y0, line.y1, line.line.dash) == (0.5, 0.5, "dash")
    assert fig.layout.annotations[0].text == "pass: ends below"
    assert not curves({"Grad-CAM": ([0, 1], [1.0, 0.5])}, "t", "x", "y").layout.shapes


def test_trust_table_is_numeric_and_drops_what_nothing_measured():
    """Grad-CAM fits no surrogate: its R² is NaN in a float column (the page's placeholder shows
    it as "n/a"), so every number gets three decimals; a column nothing measured is dropped."""
    from ui.trust_panel import trust_table

    table = trust_table([{"method": "LIME", "R²": 0.74123, "pointing hit": None, "mask IoU": None},
                         {"method": "Grad-CAM", "R²": None, "pointing hit": None, "mask IoU": None}])
    assert list(table.columns) == ["method", "R²"] and table["R²"].dtype == float
    assert table["R²"].isna().tolist() == [False, True]
    with_mask = trust_table([{"method": "LIME", "R²": 0.7, "pointing hit": True},
                             {"method": "Grad-CAM", "R²": None, "pointing hit": False}])
    assert with_mask["pointing hit"].dtype == bool and with_mask["R²"].dtype == float
