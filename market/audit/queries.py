"""Reading the audit log: the filtered list (newest first), its changes in readable words, and
the CSV export (UTF-8 with a BOM for Excel, formula-looking cells neutralised)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import joinedload

from market.accounts.models import User
from market.audit.models import ACTION_LABELS, OBJECT_LABELS, AuditEvent
from market.clock import SHANGHAI, day_end, day_start, now
from market.extensions import db
from market.models import contains
from market.money import format_fen
from market.spreadsheets import cell_value

PER_PAGE = 50
CSV_BATCH_ROWS = 500
# Dates outside these bounds are no one's audit period (and would overflow in UTC arithmetic).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)

# The names of the values events carry, for the before -> after column.
FIELD_LABELS = {
    "status": _l("状态"),
    "amount_fen": _l("金额"),
    "received_fen": _l("已收"),
    "order": _l("订单"),
    "reference": _l("凭证号"),
    "date": _l("日期"),
    "reason": _l("原因"),
    "outstanding_fen": _l("待交接"),
    "payments": _l("笔数"),
    "number": _l("编号"),
    "coop_id": _l("合作社"),
    "period_end": _l("截止日"),
    "payable_fen": _l("应付"),
    "closing_balance_fen": _l("期末余额"),
    "statement": _l("结算单"),
    "paid_on": _l("付款日"),
    "is_organizer": _l("组织方"),
    "is_admin": _l("管理员"),
    "is_finance": _l("财务"),
    "unit_id": _l("单位"),
    "role": _l("角色"),
    "price_fen": _l("价格"),
    "stock": _l("库存"),
    "delta": _l("变动"),
    "product": _l("商品"),
    "spec": _l("规格"),
    "unit": _l("单位"),
    "with_target": _l("已有目标"),
    "replace_existing": _l("覆盖已有目标"),
    "created": _l("新增"),
    "replaced": _l("覆盖"),
    "updated": _l("修改"),
    "unchanged": _l("未变"),
    "village": _l("村"),
    "since": _l("开始"),
    "until": _l("结束"),
    "note": _l("备注"),
    "units_created": _l("新增单位"),
    "villages_created": _l("新增村"),
    "closes_at": _l("截止时间"),
    "title": _l("标题"),
    "holder": _l("经手人"),
    "holder_id": _l("经手人编号"),
}


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    object_type: str | None = None
    actor: str | None = None  # a part of the actor's name or email
    start: date | None = None  # Beijing calendar days, inclusive
    end: date | None = None


def _day(text: str | None) -> date | None:
    """A yyyy-mm-dd date, or None for anything else (a bad date filters nothing)."""
    try:
        day = date.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def _text(value: str | None, limit: int) -> str | None:
    value = (value or "").strip()[:limit]
    return value or None


def filters_from(args: Mapping[str, str]) -> AuditFilters:
    """The filters of the page's query string; whatever cannot be read is left out."""
    return AuditFilters(
        action=_text(args.get("action"), 40),
        object_type=_text(args.get("object_type"), 40),
        actor=_text(args.get("actor"), 100),
        start=_day(args.get("start")),
        end=_day(args.get("end")),
    )


def events(filters: AuditFilters) -> Select:
    """The events matching `filters`, newest first, each with its actor."""
    query = select(AuditEvent).options(joinedload(AuditEvent.actor))
    if filters.action:
        query = query.where(AuditEvent.action == filters.action)
    if filters.object_type:
        query = query.where(AuditEvent.object_type == filters.object_type)
    if filters.actor:
        query = query.where(
            AuditEvent.actor.has(
                or_(
                    contains(User.name, filters.actor),
                    contains(User.email, filters.actor),
                )
            )
        )
    if filters.start:
        query = query.where(AuditEvent.at >= day_start(filters.start))
    if filters.end:
        query = query.where(AuditEvent.at < day_end(filters.end))
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def events_page(filters: AuditFilters, page: int):
    return db.paginate(events(filters), page=page, per_page=PER_PAGE, error_out=False)


def action_choices() -> list[tuple[str, str]]:
    """(action, label) of every action in the log, by label."""
    actions = db.session.scalars(select(AuditEvent.action).distinct()).all()
    return sorted(((a, str(ACTION_LABELS.get(a, a))) for a in actions), key=lambda c: c[1])


def object_type_choices() -> list[tuple[str, str]]:
    types = db.session.scalars(select(AuditEvent.object_type).distinct()).all()
    return sorted(((t, str(OBJECT_LABELS.get(t, t))) for t in types), key=lambda c: c[1])


# -- what the objects are called ---------------------------------------------------------------
NAME_ATTRIBUTES = ("name", "title", "number")


def _named_models() -> dict[str, tuple[type, str]]:
    """Model class name -> (class, the attribute that names a row). Found through the mapper
    registry, so that the log, which every domain writes to, imports none of them."""
    found = {}
    for mapper in db.Model.registry.mappers:
        for attribute in NAME_ATTRIBUTES:
            if attribute in mapper.columns:
                found[mapper.class_.__name__] = (mapper.class_, attribute)
                break
    return found


def object_names(rows: list[AuditEvent]) -> dict[tuple[str, str], str]:
    """(object type, object id) -> the object's name, title or number, for the given events."""
    wanted: dict[str, set[int]] = {}
    for event in rows:
        if event.object_id.isdigit() and len(event.object_id) < 19:
            wanted.setdefault(event.object_type, set()).add(int(event.object_id))
    models = _named_models()
    names: dict[tuple[str, str], str] = {}
    for object_type, ids in wanted.items():
        if object_type not in models:
            continue
        model, attribute = models[object_type]
        column = getattr(model, attribute)
        for object_id, name in db.session.execute(
            select(model.id, column).where(model.id.in_(ids))
        ):
            names[(object_type, str(object_id))] = str(name or "")
    return names


# -- before -> after in words --------------------------------------------------------------------
def _value_text(key: str, value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if key.endswith("_fen") and isinstance(value, int):
        return format_fen(value)
    if isinstance(value, str) and len(value) > 10 and value[10] in " T":
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:  # a UTC time: show it in Beijing time
            return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return str(value)


@dataclass(frozen=True)
class Change:
    label: str
    before: str | None  # None: the event has no "before" value for it
    after: str | None

    def __str__(self) -> str:
        if self.before is None:
            return f"{self.label}：{self.after}"
        if self.after is None:
            return f"{self.label}：{self.before}"
        if self.before == self.after:
            return f"{self.label}：{self.after}"
        return f"{self.label}：{self.before} → {self.after}"


def changes(event: AuditEvent) -> list[Change]:
    """Each value of the event: what changed first (before -> after), then what only says which."""
    before, after = event.before or {}, event.after or {}
    keys = list(before) + [k for k in after if k not in before]
    result = []
    for key in keys:
        label = str(FIELD_LABELS.get(key, key))
        result.append(
            Change(
                label,
                _value_text(key, before[key]) if key in before else None,
                _value_text(key, after[key]) if key in after else None,
            )
        )
    return result


def changes_text(event: AuditEvent) -> str:
    return "；".join(str(change) for change in changes(event))


# -- CSV -----------------------------------------------------------------------------------------
def _csv_row(event: AuditEvent, names: dict[tuple[str, str], str]) -> list[str]:
    actor = event.actor
    return [
        event.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        actor.name if actor is not None else _("系统"),
        (actor.email or "") if actor is not None else "",
        event.role_label,
        event.action_label,
        f"{event.object_label} #{event.object_id}",
        names.get((event.object_type, event.object_id), ""),
        changes_text(event),
        event.ip,
    ]


def csv_headers() -> list[str]:
    return [
        _("时间（北京时间）"),
        _("操作人"),
        _("邮箱"),
        _("角色"),
        _("操作"),
        _("对象"),
        _("对象名称"),
        _("变更"),
        _("IP"),
    ]


def _newest_first_batches(query: Select, size: int) -> Iterator[list[AuditEvent]]:
    """The events of `query` (newest first), `size` at a time, each batch a short query of its
    own after the last event of the one before (no server-side cursor, which PostgreSQL opens
    only in a transaction, and a reading request has none: market/database.py)."""
    after = None
    while True:
        page = query
        if after is not None:
            page = page.where(
                or_(
                    AuditEvent.at < after.at,
                    and_(AuditEvent.at == after.at, AuditEvent.id < after.id),
                )
            )
        batch = list(db.session.scalars(page.limit(size)).unique())
        if batch:
            yield batch
        if len(batch) < size:
            return
        after = batch[-1]


def csv_stream(filters: AuditFilters) -> Iterator[bytes]:
    """The filtered events, newest first: UTF-8 with a BOM, a chunk every few hundred rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(csv_headers())
    for batch in _newest_first_batches(events(filters), CSV_BATCH_ROWS):
        names = object_names(batch)
        for event in batch:
            writer.writerow([cell_value(cell) for cell in _csv_row(event, names)])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def csv_name() -> str:
    return f"{_('审计日志')}-{now().astimezone(SHANGHAI):%Y%m%d}.csv"
