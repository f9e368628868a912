"""Bounded input: nothing a client sends reaches the database in a form it cannot store.

- `<int:...>` in every route is an id of 1 … 2**31−1 (PostgreSQL's INTEGER) written without
  leading zeros; anything else is a 404 (no route), never an overflow in the database driver.
- Page numbers (`page_arg`) and other integer query arguments (`int_arg`) are bounded too.
- Control characters (a NUL byte above all: PostgreSQL cannot store one in text) in the path,
  the query string, form fields or a JSON body are refused with 400 before any view runs; forms
  may still hold tab, CR and LF (a textarea's lines).
- Dates typed by a client (`parse_day`, `day_arg`, the `sane_day` validator) lie in years the
  shop can compute with.
- A JSON body is read only by views marked `accepts_json`, which check its type (others answer
  415); uploaded sheets are small (`read_import`) and their cells fit their columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date

from flask import Flask, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import FileStorage
from werkzeug.routing import BaseConverter, ValidationError

from market.errors import DomainError, RowErrors

MAX_ID = 2**31 - 1  # the largest INTEGER of PostgreSQL (and of our id columns)
MAX_PAGE = 10_000
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_IMPORT_ROWS = 5000
MIN_YEAR, MAX_YEAR = 1900, 2999  # a day outside these is a typing error, not a date to compute

# The path and query string hold no control character at all; a form field or JSON string may
# hold tab, LF and CR.
_URL_FORBIDDEN = frozenset(chr(c) for c in [*range(0x20), 0x7F])
_BODY_FORBIDDEN = _URL_FORBIDDEN - {"\t", "\n", "\r"}
# Headers whose text the shop stores or sends back (a session's browser, "back" links).
STORED_HEADERS = ("User-Agent", "Referer")


class BadInput(DomainError):
    """Something no page of ours sends (a NUL byte in a form, a control character in a URL)."""

    status_code = 400


class UnsupportedBody(DomainError):
    """A JSON body sent to a page that reads forms."""

    status_code = 415


class IdConverter(BaseConverter):
    """`<int:name>`: a positive id that fits an INTEGER column, without leading zeros."""

    regex = r"[1-9][0-9]{0,9}"
    weight = 50  # as werkzeug's own int converter: a number before a plain string

    def __init__(self, map, *args, **kwargs) -> None:  # werkzeug's options are not used here
        super().__init__(map)

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValidationError()  # no route matches: 404
        return number

    def to_url(self, value) -> str:
        return str(int(value))


def bounded_int(text: object, low: int, high: int) -> int | None:
    """`text` as an integer of low … high, else None (ASCII digits only, at most 12 of them)."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 12:
        return None
    number = int(text)
    return number if low <= number <= high else None


def int_arg(name: str, low: int = 1, high: int = MAX_ID) -> int | None:
    """A query argument that names an id (or another bounded integer); None when it is missing
    or not a number in low … high (so 2**63 is ignored, never sent to the database)."""
    return bounded_int(request.args.get(name), low, high)


def clamp_page(page: int | None) -> int:
    """A page number of 1 … MAX_PAGE, for queries that are handed one."""
    return min(max(page or 1, 1), MAX_PAGE)


def page_arg(name: str = "page") -> int:
    """The page number of a listing: 1 … MAX_PAGE; 1 for anything unreadable, the last
    allowed page for anything beyond it (an empty page, not an error)."""
    text = (request.args.get(name) or "").strip()
    number = bounded_int(text, -(10**12), 10**12)
    if number is None:
        return MAX_PAGE if text.isascii() and text.isdigit() else 1
    return clamp_page(number)


def parse_day(text: object) -> date | None:
    """An ISO day (YYYY-MM-DD) of years MIN_YEAR … MAX_YEAR, else None."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if len(text) != 10:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return sane_day_or_none(day)


def sane_day_or_none(day: date | None) -> date | None:
    """`day` if it lies in MIN_YEAR … MAX_YEAR, else None (for queries handed a date)."""
    return day if day is not None and MIN_YEAR <= day.year <= MAX_YEAR else None


def day_arg(name: str) -> date | None:
    return parse_day(request.args.get(name))


def sane_day(form, field) -> None:
    """A WTForms validator for DateField / DateTimeField: a year the shop computes with (year
    1 in Beijing is before year 1 in UTC; 9999-12-31 has no next day)."""
    from wtforms.validators import ValidationError as FieldError

    if field.data is not None and not MIN_YEAR <= field.data.year <= MAX_YEAR:
        raise FieldError(_l("日期应在 %(low)d 年到 %(high)d 年之间", low=MIN_YEAR, high=MAX_YEAR))


def accepts_json(view: Callable) -> Callable:
    """Marks a view that reads a JSON body, and checks its type itself (a string or a list
    where it wants an object is its 400). Any other view answers a JSON body with 415: its
    form would read it as the fields (Flask-WTF does), and a string or a list as a crash."""
    view.accepts_json = True  # type: ignore[attr-defined]
    return view


def _check_json_body() -> None:
    from flask import current_app

    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return  # no route: the 404 follows
    if not getattr(view, "accepts_json", False) and not request.path.startswith("/api/"):
        raise UnsupportedBody(_("此地址不接受 JSON 内容"))
    # What the body must be (an object with a string token, a signed Stripe event) is the
    # view's to say, in its own error format; only control characters are refused here.
    payload = request.get_json(silent=True)
    if payload is not None and _json_has_control(payload):
        raise BadInput(_("提交的内容中含有不允许的字符"))


def read_import(upload: FileStorage | None, limit: int = MAX_IMPORT_BYTES) -> bytes:
    """The bytes of an uploaded sheet (roster, targets, catalogue) of at most `limit` bytes;
    a larger one is refused as the file's problem (line 1) without reading it all."""
    if upload is None:
        return b""
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        message = _("文件太大：最多 %(mb)d MB", mb=limit // (1024 * 1024))
        raise RowErrors(message, [(1, message)])
    return data


def cell_problem(label: str, value: str, max_length: int) -> str | None:
    """A row error for a cell longer than its column, naming the column and the limit."""
    if len(value) <= max_length:
        return None
    return _("%(column)s 太长：最多 %(n)d 个字", column=label, n=max_length)


def shown(value: str, length: int = 40) -> str:
    """A cell's text as quoted in an error message: never a whole megabyte."""
    return value if len(value) <= length else value[:length] + "…"


def _has(chars: Iterable[str], forbidden: frozenset[str]) -> bool:
    return any(char in forbidden for char in chars)


def has_control_characters(text: str) -> bool:
    """A control character other than tab, LF and CR (as a form field may hold)."""
    return _has(text, _BODY_FORBIDDEN)


def _json_has_control(value, depth: int = 0) -> bool:
    if depth > 50:
        return True  # nothing of ours nests so deep
    if isinstance(value, str):
        return _has(value, _BODY_FORBIDDEN)
    if isinstance(value, dict):
        return any(
            _has(key, _BODY_FORBIDDEN) or _json_has_control(item, depth + 1)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_json_has_control(item, depth + 1) for item in value)
    return False


def refuse_control_characters() -> None:
    """Before any view (and before the database): refuse control characters in the path, the
    query string, the stored headers, the form fields (names and values, files' names) and a
    JSON body."""
    if _has(request.path, _URL_FORBIDDEN):
        raise BadInput(_("网址中含有不允许的字符"))
    for key, value in request.args.items(multi=True):
        if _has(key, _URL_FORBIDDEN) or _has(value, _URL_FORBIDDEN):
            raise BadInput(_("网址中含有不允许的字符"))
    for header in STORED_HEADERS:
        if _has(request.headers.get(header, ""), _BODY_FORBIDDEN):
            raise BadInput(_("请求头中含有不允许的字符"))
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in request.form.items(multi=True):
            if _has(key, _BODY_FORBIDDEN) or _has(value, _BODY_FORBIDDEN):
                raise BadInput(_("提交的内容中含有不允许的字符"))
        for key, upload in request.files.items(multi=True):
            if _has(key, _BODY_FORBIDDEN) or _has(upload.filename or "", _BODY_FORBIDDEN):
                raise BadInput(_("提交的内容中含有不允许的字符"))
    elif request.is_json:
        _check_json_body()


def init_app(app: Flask) -> None:
    # Every `<int:...>` of every blueprint (registered after this) is an id converter.
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_control_characters)
