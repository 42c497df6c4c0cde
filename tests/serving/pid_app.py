"""A trivial app for tests/serving/test_workers.py: answers with the worker's process id."""

import os

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/pid")
    async def pid() -> dict:
        return {"pid": os.getpid()}

    return app
