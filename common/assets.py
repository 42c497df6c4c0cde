"""The vendored plotly.js (common/vendor/README.md: source, version, sha256): one file, used by the
console's pages (served at ``/static/vendor/``) and by the nightly HTML report (inlined)."""

from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"
PLOTLY_JS = "vendor/plotly-cartesian-4.1.1.min.js"  # its URL under /static; the file is VENDOR / its name


def plotly_source() -> str:
    """The library's text, for pages that inline it (the nightly report opens with no server)."""
    return (VENDOR / Path(PLOTLY_JS).name).read_text()
