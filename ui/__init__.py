"""Streamlit helpers of the dashboard (everything Streamlit-specific that is not a page).

- ``services``: cached models, images and the shared run store (explicit arguments only);
- ``state``: session-state keys, defaults and the user's current choices;
- ``page``: what every page calls first (sidebar, model + image or a message);
- ``sidebar``, ``widgets``, ``explain_panel``, ``trust_panel``, ``exports``: drawing helpers;
- ``figures``: plotly figures (no Streamlit).
"""
