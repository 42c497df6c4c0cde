"""The ``vitrine`` command: one Typer app, one module per command group. Each command parses its
options and calls plain library functions; errors become one line and a non-zero exit.

    data     pipelines/cli/data.py     build, import, validate, split datasets
    vision   pipelines/cli/vision.py   the product-image CNN
    recsys   pipelines/cli/recsys.py   the two-tower and the ranker
    index    pipelines/cli/index.py    FAISS indexes
    bundle   pipelines/cli/bundle.py   artifact bundles
    serve, nightly, canary, demo, simulate   pipelines/cli/ops.py
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from pipelines.cli import bundle, data, index, ops, recsys, vision
from pipelines.cli.common import console
from pipelines.settings import get_settings

app = typer.Typer(help="Vitrine: recommendations and product vision.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
for group in (data, vision, recsys, index, bundle):
    app.add_typer(group.app, name=group.__name__.rsplit(".", 1)[-1])
for command in (ops.serve, ops.nightly, ops.canary, ops.demo):
    app.command()(command)
app.command("simulate")(ops.simulate_shoppers)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    level = "DEBUG" if verbose else get_settings().log_level
    logging.basicConfig(level=level, format="%(message)s", datefmt="%X",
                        handlers=[RichHandler(console=console, show_path=False)], force=True)
