"""One place that turns errors into pages (or JSON for JSON clients), in the shop's own style."""

from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from market.errors import DomainError


def _titles() -> dict[int, str]:
    return {
        400: _("请求有误"),
        403: _("没有权限访问此页面"),
        404: _("页面不存在"),
        405: _("不支持的请求方式"),
        413: _("上传的文件太大"),
        429: _("操作太频繁，请稍后再试"),
        500: _("服务器出了点问题"),
        503: _("服务暂时不可用"),
    }


def _wants_json() -> bool:
    if request.is_json or request.path.startswith(("/api/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and not request.accept_mimetypes.accept_html


def render_error(code: int, message: str | None = None):
    title = _titles().get(code, _("出错了"))
    if _wants_json():
        return jsonify({"error": title, "message": message or title}), code
    return render_template("errors/error.html", code=code, title=title, message=message), code


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(400, _("页面已过期或缺少安全令牌，请刷新页面后重试。"))

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded):
        from market.security.throttle import retry_after_of_request, wait_text

        wait = retry_after_of_request()
        response = make_response(
            render_error(429, _("操作太频繁，请 %(wait)s后再试", wait=wait_text(wait)))
        )
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        return render_error(error.status_code, str(error))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        return render_error(error.code)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unhandled error")
        from market.extensions import db

        db.session.rollback()
        return render_error(500)
