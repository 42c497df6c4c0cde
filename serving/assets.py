"""Where the pages' files are: Jinja2 templates, static files, and the vendored plotly.js (one name,
used by the console's pages and by the nightly HTML report, which inlines it)."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_JS = "vendor/plotly-cartesian-4.1.1.min.js"  # under STATIC (vendor/README.md: source, version, sha256)
