"""One error shape for the whole API: {"error": code, "message": text, "fields": {...}}, the
message in the request's language. Handlers are registered on the API's blueprints (and, for
routing errors under /api/ that reach no blueprint, in a before_request hook), so the HTML
pages keep their own error pages."""

from __future__ import annotations

import re
from functools import wraps

from flask import Response, current_app, jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from market.errors import DomainError, NotAllowed

API_PREFIX = "/api/"  # every version

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "server_error",
    503: "unavailable",
}


def _messages() -> dict[int, str]:
    return {
        400: _("请求有误"),
        401: _("请先登录"),
        403: _("没有权限进行此操作"),
        404: _("找不到该资源"),
        405: _("不支持的请求方式"),
        409: _("当前状态不允许此操作"),
        413: _("上传的文件太大"),
        415: _("请以 JSON 格式提交"),
        422: _("提交的内容有误"),
        429: _("操作太频繁，请稍后再试"),
        500: _("服务器出了点问题"),
        503: _("服务暂时不可用"),
    }


def error_response(
    status: int, message: str | None = None, *, code: str | None = None, fields: dict | None = None
) -> Response:
    body = {
        "error": code or CODES.get(status, "error"),
        "message": message or _messages().get(status, _("请求有误")),
        "fields": fields or {},
    }
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


LOCATIONS = {"json", "query", "headers", "view_args", "form", "files", "path"}

# marshmallow's messages, said in Chinese (English requests keep marshmallow's own words until
# the English catalogue has these).
_MESSAGES = [
    (re.compile(r"^Missing data for required field\.$"), _l("必填")),
    (re.compile(r"^Unknown field\.$"), _l("不接受此字段")),
    (re.compile(r"^Field may not be null\.$"), _l("不能为空")),
    (re.compile(r"^Not a valid integer\.$"), _l("应为整数")),
    (re.compile(r"^Not a valid string\.$"), _l("应为文字")),
    (re.compile(r"^Not a valid boolean\.$"), _l("应为 true 或 false")),
    (re.compile(r"^Not a valid list\.$"), _l("应为列表")),
    (re.compile(r"^Not a valid (aware )?datetime\.$"), _l("应为带时区的 ISO 8601 时间")),
    (re.compile(r"^Invalid input type\.$"), _l("格式不对")),
    (re.compile(r"^Invalid value\.$"), _l("格式不对")),
    (re.compile(r"^Must be one of: (?P<choices>.+)\.$"), _l("应为以下之一：%(choices)s")),
    (
        re.compile(
            r"^Must be greater than or equal to (?P<low>\S+)"
            r" and less than or equal to (?P<high>\S+)\.$"
        ),
        _l("应在 %(low)s 到 %(high)s 之间"),
    ),
    (re.compile(r"^Must be greater than or equal to (?P<low>\S+)\.$"), _l("应不小于 %(low)s")),
    (re.compile(r"^Must be less than or equal to (?P<high>\S+)\.$"), _l("应不大于 %(high)s")),
    (
        re.compile(r"^Length must be between (?P<low>\d+) and (?P<high>\d+)\.$"),
        _l("长度应为 %(low)s 到 %(high)s"),
    ),
    (re.compile(r"^Shorter than minimum length (?P<low>\d+)\.$"), _l("长度至少为 %(low)s")),
    (re.compile(r"^Longer than maximum length (?P<high>\d+)\.$"), _l("长度最多为 %(high)s")),
]


def _said(message: str) -> str:
    from flask_babel import get_locale

    if str(get_locale() or "").startswith("en"):
        return message
    for pattern, chinese in _MESSAGES:
        match = pattern.match(message)
        if match:
            text = str(chinese)
            return text % match.groupdict() if match.groupdict() else text
    return message


def _flatten(messages, prefix: str = "") -> dict[str, list[str]]:
    """webargs' {"json": {"items": {"0": {"quantity": ["..."]}}}} ->
    {"items.0.quantity": ["..."]}: one list of texts per field path."""
    found: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if not prefix and key in LOCATIONS:
                found.update(_flatten(value))
                continue
            found.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        found.setdefault(prefix or "_schema", []).extend(_said(m) for m in messages)
    elif isinstance(messages, list | tuple):
        for index, value in enumerate(messages):
            found.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        found.setdefault(prefix or "_schema", []).append(_said(str(messages)))
    return found


def handle_domain_error(error: DomainError) -> Response:
    from market.extensions import db

    db.session.rollback()
    status = error.status_code
    if isinstance(error, NotAllowed):
        # The role was checked by requires() before the service ran: what a service refuses
        # now is someone else's object, which the API does not admit exists.
        status = 404
    code = {
        "DomainError": CODES.get(status, "bad_request"),
        "NotAllowed": "not_found",
    }.get(type(error).__name__) or _snake(type(error).__name__)
    message = _messages()[404] if isinstance(error, NotAllowed) else str(error)
    fields = {error.field: [message]} if getattr(error, "field", None) else {}
    response = error_response(status, message, code=code, fields=fields)
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, RateLimitExceeded):
        from market.security.throttle import retry_after_of_request, wait_text

        wait = retry_after_of_request()
        response = error_response(429, _("操作太频繁，请 %(wait)s后再试", wait=wait_text(wait)))
        response.headers["Retry-After"] = str(wait)
        return response
    data = getattr(error, "data", None) or {}
    if status == 422 or "messages" in data:
        return error_response(
            422 if status == 422 else status, fields=_flatten(data.get("messages", {}))
        )
    response = error_response(status)
    if status == 405 and getattr(error, "valid_methods", None):
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def handle_unexpected(error: Exception) -> Response:
    from market.extensions import db

    if isinstance(error, HTTPException):
        return handle_http_error(error)
    if isinstance(error, DomainError):
        return handle_domain_error(error)
    current_app.logger.exception("unhandled API error")
    db.session.rollback()
    return error_response(500)


def take_over_app_handlers(app) -> None:
    """The app's own error handlers (market/errorpages.py, registered before this) answer a
    path under /api/ in the API's shape: errors raised before a view of the API's blueprints
    runs (no such route, a method it does not take, a control character refused by
    market/security/inputs.py) reach only those. Every other path keeps its page."""
    for by_class in app.error_handler_spec[None].values():
        for cls, original in list(by_class.items()):
            by_class[cls] = _api_first(original)


def _api_first(original):
    @wraps(original)
    def handle(error):
        if request.path.startswith(API_PREFIX):
            return handle_unexpected(error)
        return original(error)

    return handle


def register(blueprint) -> None:
    blueprint.register_error_handler(DomainError, handle_domain_error)
    blueprint.register_error_handler(HTTPException, handle_http_error)
    blueprint.register_error_handler(Exception, handle_unexpected)
