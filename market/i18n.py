"""Language and time zone: zh_CN unless the visitor chose English; times shown in Asia/Shanghai."""

from __future__ import annotations

from functools import lru_cache

import flask_wtf.i18n
from babel import support
from flask import Flask, current_app, has_request_context, session
from flask_babel import get_locale
from flask_login import current_user
from wtforms.i18n import messages_path

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


@lru_cache(maxsize=8)
def _wtforms_catalog(locale: str) -> support.Translations:
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


def _wtforms_translations() -> support.Translations | None:
    """WTForms' own messages in the request's language. Flask-WTF parses their catalog again in
    every request that builds a form (about 0.3 ms each, issue 13); it never changes while the
    process runs, so one is kept per language."""
    if not has_request_context() or "babel" not in current_app.extensions:
        return None
    return _wtforms_catalog(str(get_locale()))


def init_babel(app: Flask) -> None:
    flask_wtf.i18n._get_translations = _wtforms_translations
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(ROOT / "market" / "translations"),
    )
