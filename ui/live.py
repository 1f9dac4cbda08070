"""The Explain page's live mode: Grad-CAM on the camera stream (streamlit-webrtc).

The browser sends the camera over WebRTC to this server (on localhost no internet is needed:
the ICE server list is empty, so only host candidates are used and nothing is fetched); each
frame goes through ``explainers.live.LiveGradCam`` in streamlit-webrtc's worker thread and the
explained frame is streamed back. Frames that arrive while one is being explained are dropped
(``async_processing``), so the picture stays current whatever the model's speed. A fragment
refreshes the frame counter, the rate and the current label once a second.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

ENGINE_KEY = "xai_live_engine"


def preload_webrtc() -> None:
    """Load streamlit-webrtc's SRTP library before TensorFlow, when it is installed.

    Checked here (aiortc 1.16, pylibsrtp, TensorFlow 2.21): ``import tensorflow; import
    pylibsrtp`` is a segmentation fault, the other order works. app.py calls this first thing,
    so the live mode can load aiortc later in the same process.
    """
    import sys

    if "tensorflow" in sys.modules:  # too late: importing it now would crash the process
        return
    try:
        import pylibsrtp  # noqa: F401
    except ImportError:
        pass

NO_ICE_SERVERS = {"iceServers": []}  # localhost: host candidates only, no STUN/TURN lookups
VIDEO_CONSTRAINTS = {"width": {"ideal": 320}, "height": {"ideal": 240}, "frameRate": {"max": 10}}
"""Small, slow video: aiortc depacketises and encodes in Python threads of the Streamlit server,
and at 640×480 × 30 frames/s that work starved the model on 2 cores (1.1–1.7 s per frame in
the model instead of ~50 ms). The model sees a 224² crop either way."""


def live_panel(classifier: Any) -> None:
    """A toggle that opens the live camera view (the rest of the page stays as it is)."""
    if not st.toggle("Live camera: Grad-CAM on every frame", key="xai_live",
                     help="Your browser asks for the camera; frames go to this server only."):
        return
    if not getattr(classifier, "supports_gradients", False) or classifier.cam_layer is None:
        st.info("The live view shows Grad-CAM, which this model cannot give (no gradients or "
                "convolutional layer). Use a snapshot from the camera instead.")
        return
    import sys

    if "pylibsrtp" not in sys.modules and "tensorflow" in sys.modules:
        st.info("The live view needs streamlit-webrtc loaded before TensorFlow, and this process "
                "loaded TensorFlow first; start the dashboard with `streamlit run app.py`.")
        return
    try:
        import av
        from streamlit_webrtc import WebRtcMode, webrtc_streamer
    except ImportError:
        st.info("The live view needs streamlit-webrtc (pip install streamlit-webrtc); "
                "the Camera snapshot in the sidebar works without it.")
        return
    live = _engine(classifier)

    def explain_frame(frame: "av.VideoFrame") -> "av.VideoFrame":
        out = live.process(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(out.picture, format="rgb24")

    webrtc_streamer(
        key="xai_live_stream",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=NO_ICE_SERVERS,
        server_rtc_configuration=NO_ICE_SERVERS,
        media_stream_constraints={"video": VIDEO_CONSTRAINTS, "audio": False},
        video_frame_callback=explain_frame,
        async_processing=True,
    )
    live_status()


def _engine(classifier: Any) -> Any:
    """One LiveGradCam per session and model (its counters are what the status line shows)."""
    from explainers.live import LiveGradCam

    live = st.session_state.get(ENGINE_KEY)
    if live is None or live.classifier is not classifier:
        live = LiveGradCam(classifier)
        with st.spinner("Preparing Grad-CAM for the live view…"):
            live.warm_up()
        st.session_state[ENGINE_KEY] = live
    return live


@st.fragment(run_every=1.0)
def live_status() -> None:
    live = st.session_state.get(ENGINE_KEY)
    if live is None or live.last is None:
        st.caption("Press START and allow the camera; the explained video appears above.")
        return
    last = live.last
    st.caption(f"Live: {live.frames} frames explained · {live.fps():.1f} frames/s · "
               f"{last.label_name} {last.probability:.0%} · {last.seconds * 1000:.0f} ms per frame "
               f"({last.model_seconds * 1000:.0f} ms in the model)")
