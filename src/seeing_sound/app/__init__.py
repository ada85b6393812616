"""``seeing-sound app``: a Gradio web UI over a trained model and the compose controls (extra ``[app]``).

:mod:`~seeing_sound.app.core` holds the logic (no gradio); :mod:`~seeing_sound.app.ui` the widgets, imported
only when the app is built.
"""

from seeing_sound.app.core import ARRANGEMENTS, SPACES, AppConfig, AppSession

__all__ = ["ARRANGEMENTS", "SPACES", "AppConfig", "AppSession"]
