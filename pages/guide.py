"""Guide: what each method does, how to read the pictures, and what to trust."""
from __future__ import annotations

import streamlit as st

from explainers.context import SamplingParams
from ui import page, services

_SP = SamplingParams()  # the defaults the text quotes come from the parameters themselves
_ONE_SIDED = ", ".join(s.title for s in services.method_specs().values() if not s.signed)  # the registry's word

page.page_setup()
st.title("Guide")
st.markdown(
    f"""
**XAI Lens answers "why did my image classifier say that?"** Pick a model and an image in the
sidebar, then compare explanations on the **Explain** page.

**Reading the pictures.** The high end of every colour scale (red, orange or yellow) means the
region pushed the model *towards* the selected label, the low end (blue or purple) *away* from
it, in every style, page and export; the legend under each picture gives the scale's ends in the
method's units. Methods whose maps are never negative ({_ONE_SIDED}: "one-sided" in the table
below) show only what pushes towards the label: their scale runs from 0, no push, to the high end.
Weak regions leave the photo as it is, so what stands out is what mattered; the
white outlines mark the strongest regions. *Blue – orange* and *viridis* are safe for colour-blind
viewers. Each method has its own units, so every method gets its own colour scale (symmetric
around 0, or from 0 when one-sided), shared across labels; LIME and KernelSHAP measure the same thing (change in probability per
superpixel) and share one scale. The *pros & cons* style paints the top superpixels with the two
end colours of the chosen scale. *Top-N* keeps the N strongest superpixels, or the strongest N %
of pixels for pixel maps such as Grad-CAM.

**Superpixels.** LIME and KernelSHAP hide groups of pixels (superpixels) and watch the prediction
change. The preview shows them before any model call is spent; fewer, larger superpixels give
coarser but more stable explanations.

**Samples.** LIME and KernelSHAP reuse the same perturbed images, so asking for both costs one
pass. With *auto* samples (the default) the run grows until the top-{_SP.top_n} regions are expected
to overlap those of the final answer by at least {_SP.threshold:.0%}, or stops at the budget of
{_SP.budget:,} images; each label stops on its own, and the caption under each picture says how many
samples it used and whether it became stable. A fixed number is also possible. *More samples* adds
to the run instead of starting again.

**Dotted outlines** mark regions whose sign the samples do not settle: they might help or hurt
the answer. The captions and the plain-language story never claim them.

**Compare labels** shows every top-k label at once — handy for "why *seat belt* for my cat?" — and
explains one label *rather than* another. **Stakeholder mode** hides the knobs and tells the
story of each label in plain words, with how far to trust it.

**Trust** checks how far each picture can be believed: does hiding the highlighted regions really
lower the score (faithfulness), do other seeds or invisible noise change it (stability), and —
with the sanity check — does the map change when the model's learned weights are scrambled?

**Audit** explains a whole folder, .zip or video at once and answers the question one level up:
where does the model look across each class, and which images look at the wrong thing? It says
what it found in sentences first; within a class, a separate group of images whose maps look
elsewhere can reveal a shortcut such as a watermark.
"""
)
st.subheader("Methods")
st.markdown(services.method_table_markdown())
