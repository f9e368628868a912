"""Language and time zone: zh_CN unless the visitor chose English; times shown in Asia/Shanghai."""

from __future__ import annotations

from flask import Flask, current_app, has_request_context, session
from flask_login import current_user

from market import ROOT
from market.extensions import babel


def select_locale() -> str:
    if not has_request_context():  # CLI commands and background jobs speak the default
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("lang")
    if chosen in current_app.config["LANGUAGES"]:
        return chosen
    if current_user and getattr(current_user, "locale", None) in current_app.config["LANGUAGES"]:
        return current_user.locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def init_babel(app: Flask) -> None:
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(ROOT / "market" / "translations"),
    )
