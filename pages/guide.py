"""Guide: what each method does, how to read the pictures, and what to trust."""
from __future__ import annotations

import streamlit as st

from ui import page, services

page.page_setup()
st.title("Guide")
st.markdown(
    """
**XAI Lens answers "why did my image classifier say that?"** Pick a model and an image in the
sidebar, then compare explanations on the **Explain** page.

**Reading the pictures.** The high end of every colour scale (red, orange or yellow) means the
region pushed the model *towards* the selected label, the low end (blue or purple) *away* from
it, in every style, page and export; the legend under each picture gives the scale's ends in the
method's units. Weak regions leave the photo as it is, so what stands out is what mattered; the
white outlines mark the strongest regions. *Blue – orange* and *viridis* are safe for colour-blind
viewers. Each method has its own units, so every method gets its own symmetric colour scale,
shared across labels; LIME and KernelSHAP measure the same thing (change in probability per
superpixel) and share one scale. The *pros & cons* style paints the top superpixels with the two
end colours of the chosen scale. *Top-N* keeps the N strongest superpixels, or the strongest N %
of pixels for pixel maps such as Grad-CAM.

**Superpixels.** LIME and KernelSHAP hide groups of pixels (superpixels) and watch the prediction
change. The preview shows them before any model call is spent; fewer, larger superpixels give
coarser but more stable explanations.

**Samples.** Both methods reuse the same perturbed images, so asking for both costs one pass.
*More samples* adds to the run instead of starting again.

**Compare labels** shows every top-k label at once — handy for "why *seat belt* for my cat?".
**Stakeholder mode** hides the knobs and writes a plain-language caption per label.
"""
)
st.subheader("Methods")
st.markdown(services.method_table_markdown())
