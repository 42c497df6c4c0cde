"""Where the pages' files are: Jinja2 templates and static files (CSS, JavaScript). The vendored
plotly.js is common/assets.py's, served under ``/static/vendor/``."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
