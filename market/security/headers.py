"""Response headers that keep private pages and files private."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
