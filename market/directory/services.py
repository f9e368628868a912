"""Keeping the directory: towns, villages, co-ops, units and pairings, and the yearly roster import.

Pairing rule of the programme (结对共建): at any day a village has at most two units and a unit
at most three villages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from market.audit import services as audit
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.errors import DomainError, NotFound, RowErrors
from market.extensions import db
from market.security.inputs import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_ROWS,
    cell_problem,
    has_control_characters,
    sane_day_or_none,
    shown,
)
from market.transactions import commit_unique
from market.uploads import remove_stored, store_image

MAX_UNITS_PER_VILLAGE = 2
MAX_VILLAGES_PER_UNIT = 3
ROSTER_COLUMNS = ("unit", "town", "village", "since", "until", "note")
MAX_SHOWN_ERRORS = 200  # a page of bad lines, not 37 MB of them


class Actor(Protocol):
    """Who changes the directory, for the audit log: a signed-in User (market.accounts, which sits
    above the directory: its memberships point at units and co-ops)."""

    is_organizer: bool


def get(model, object_id: int):
    obj = db.session.get(model, object_id)
    if obj is None:
        raise NotFound(_("找不到该记录"))
    return obj


# -- towns, villages, co-ops, units --------------------------------------------------------------
def save_town(name: str, town: Town | None = None) -> Town:
    """Town names are unique."""
    town = town or Town()
    town.name = name.strip()
    db.session.add(town)
    commit_unique(_("已有同名的镇（街道）"))
    return town


def save_village(
    *,
    town_id: int,
    name: str,
    is_typical: bool,
    story: str,
    photo: FileStorage | None = None,
    village: Village | None = None,
) -> Village:
    """A village's name is unique within its town. A new photo replaces the old one."""
    get(Town, town_id)
    village = village or Village()
    village.town_id = town_id
    village.name = name.strip()
    village.is_typical = is_typical
    village.story = story.strip()
    old_paths = (village.photo_path, village.photo_thumb_path)
    if photo is not None and photo.filename:
        stored = store_image(photo, "villages")
        village.photo_path, village.photo_thumb_path = stored.path, stored.thumb_path
    db.session.add(village)
    commit_unique(_("该镇已有同名的村"))
    if photo is not None and photo.filename:
        remove_stored(*old_paths)
    return village


def save_coop(
    *,
    village_id: int,
    name: str,
    intro: str,
    contact_phone: str,
    settlement_account: str,
    approved: bool,
    coop: Coop | None = None,
) -> Coop:
    get(Village, village_id)
    coop = coop or Coop()
    coop.village_id = village_id
    coop.name = name.strip()
    coop.intro = intro.strip()
    coop.contact_phone = contact_phone.strip()
    coop.settlement_account = settlement_account.strip()
    coop.approved = approved
    db.session.add(coop)
    commit_unique(_("该村已有同名的合作社"))
    return coop


def save_unit(*, name: str, address: str, contact_phone: str, unit: Unit | None = None) -> Unit:
    unit = unit or Unit()
    unit.name = name.strip()
    unit.address = address.strip()
    unit.contact_phone = contact_phone.strip()
    db.session.add(unit)
    commit_unique(_("已有同名的单位"))
    return unit


# -- pairings ----------------------------------------------------------------------------------
def max_concurrent(intervals: Iterable[tuple[date, date | None]]) -> int:
    """The most intervals (inclusive, open-ended when None) active on any one day."""
    spans = list(intervals)
    best = 0
    for start, _end in spans:
        active = sum(1 for s, e in spans if s <= start and (e is None or start <= e))
        best = max(best, active)
    return best


def _capacity_problems(pairings: Iterable[tuple[int, int, date, date | None]]) -> list[str]:
    """Given (unit_id, village_id, since, until) for all pairings, name the rule broken, if any."""
    by_village: dict[int, list[tuple[date, date | None]]] = {}
    by_unit: dict[int, list[tuple[date, date | None]]] = {}
    for unit_id, village_id, since, until in pairings:
        by_village.setdefault(village_id, []).append((since, until))
        by_unit.setdefault(unit_id, []).append((since, until))
    problems = []
    for village_id, spans in by_village.items():
        if max_concurrent(spans) > MAX_UNITS_PER_VILLAGE:
            village = db.session.get(Village, village_id)
            name = village.name if village else str(village_id)
            problems.append(
                _("%(village)s 同时结对的单位超过 %(n)d 个", village=name, n=MAX_UNITS_PER_VILLAGE)
            )
    for unit_id, spans in by_unit.items():
        if max_concurrent(spans) > MAX_VILLAGES_PER_UNIT:
            unit = db.session.get(Unit, unit_id)
            name = unit.name if unit else str(unit_id)
            problems.append(
                _("%(unit)s 同时结对的村超过 %(n)d 个", unit=name, n=MAX_VILLAGES_PER_UNIT)
            )
    return problems


def _pairings_touching(unit_ids: set[int], village_ids: set[int]) -> list[Pairing]:
    return list(
        db.session.scalars(
            select(Pairing).where(
                Pairing.unit_id.in_(unit_ids) | Pairing.village_id.in_(village_ids)
            )
        )
    )


def _organizer(actor: Actor | None) -> str | None:
    return "organizer" if actor is not None and actor.is_organizer else None


def _pairing_values(pairing: Pairing) -> dict:
    return {
        "unit": pairing.unit.name,
        "village": pairing.village.name,
        "since": pairing.since,
        "until": pairing.until,
        "note": pairing.note,
    }


def save_pairing(
    *,
    unit_id: int,
    village_id: int,
    since: date,
    until: date | None,
    note: str = "",
    pairing: Pairing | None = None,
    actor: Actor | None = None,
) -> Pairing:
    """A pairing ends on or after it starts, and keeps the two-units / three-villages rule.
    A new pairing, or a change to one, is audited with the values before and after."""
    unit = get(Unit, unit_id)
    village = get(Village, village_id)
    if until is not None and until < since:
        raise DomainError(_("结束日期不能早于开始日期"), field="until")
    others = [
        p
        for p in _pairings_touching({unit_id}, {village_id})
        if pairing is None or p.id != pairing.id
    ]
    for other in others:
        same_pair = other.unit_id == unit_id and other.village_id == village_id
        if same_pair and other.overlaps(since, until):
            raise DomainError(_("该单位与该村在这段时间已有结对"))
    spans = [(p.unit_id, p.village_id, p.since, p.until) for p in others]
    spans.append((unit_id, village_id, since, until))
    problems = _capacity_problems(spans)
    if problems:
        raise DomainError("；".join(problems))
    before = _pairing_values(pairing) if pairing is not None else None
    pairing = pairing or Pairing()
    pairing.unit, pairing.village = unit, village
    pairing.since, pairing.until, pairing.note = since, until, note.strip()
    db.session.add(pairing)
    after = _pairing_values(pairing)
    if after != before:
        action = "pairing.created" if before is None else "pairing.changed"
        audit.record(
            actor, action, pairing, before=before, after=after, acting_as=_organizer(actor)
        )
    commit_unique(_("该结对已存在"))
    return pairing


# -- roster import -----------------------------------------------------------------------------
@dataclass
class RosterLine:
    line: int
    unit: str
    town: str
    village: str
    since: date
    until: date | None
    note: str


@dataclass
class RosterResult:
    pairings_created: int = 0
    pairings_updated: int = 0
    pairings_unchanged: int = 0
    units_created: list[str] = field(default_factory=list)
    villages_created: list[str] = field(default_factory=list)


def _decode(raw: bytes) -> str:
    # Excel in China often saves CSV as GB18030; UTF-8 (with or without BOM) is preferred.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise RowErrors(_("文件编码无法识别，请保存为 UTF-8 CSV"), [(1, _("无法识别的编码"))])


def _parse_date(text: str) -> date:
    text = text.strip().replace("/", "-")
    day = datetime.strptime(text, "%Y-%m-%d").date()
    if sane_day_or_none(day) is None:
        raise ValueError(text)  # year 1 or 9999: a typing error, reported as the format's
    return day


# The longest text each roster column may hold: its column's length in the database.
ROSTER_LENGTHS = {
    "unit": Unit.__table__.c.name.type.length,
    "town": Town.__table__.c.name.type.length,
    "village": Village.__table__.c.name.type.length,
    "note": Pairing.__table__.c.note.type.length,
}


def _cell_problems(values: dict[str, str]) -> list[str]:
    """Cells the database could not hold: longer than their column, or with control characters
    (a NUL byte above all)."""
    problems = []
    for column, value in values.items():
        if column in ROSTER_LENGTHS:
            problem = cell_problem(column, value, ROSTER_LENGTHS[column])
            if problem:
                problems.append(problem)
        if has_control_characters(value):
            problems.append(_("%(column)s 含有不允许的控制字符", column=column))
    return problems


def parse_roster(raw: bytes) -> list[RosterLine]:
    """Every bad line is reported with its number (the header is line 1); nothing is returned
    unless all lines are good. At most MAX_IMPORT_BYTES and MAX_IMPORT_ROWS lines; a cell the
    database could not hold (too long, a NUL byte) is a bad line."""
    if len(raw) > MAX_IMPORT_BYTES:
        message = _("文件太大：最多 %(mb)d MB", mb=MAX_IMPORT_BYTES // (1024 * 1024))
        raise RowErrors(message, [(1, message)])
    text = _decode(raw)
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as error:
        raise RowErrors(_("名单格式不对"), [(1, str(error))]) from None
    missing = [c for c in ROSTER_COLUMNS if c not in header]
    if missing:
        raise RowErrors(
            _("名单格式不对"),
            [(1, _("缺少列：%(columns)s", columns=", ".join(missing)))],
        )
    reader.fieldnames = header
    towns = {t.name for t in db.session.scalars(select(Town))}
    lines: list[RosterLine] = []
    errors: list[tuple[int, str]] = []
    seen: dict[tuple[str, str, str, date], int] = {}
    try:
        for number, row in enumerate(reader, start=2):
            if number > MAX_IMPORT_ROWS + 1:
                errors.append((number, _("行数过多：最多 %(n)d 行", n=MAX_IMPORT_ROWS)))
                break
            values = {k: (row.get(k) or "").strip() for k in ROSTER_COLUMNS}
            if not any(values.values()):
                continue  # blank line
            problems = _cell_problems(values) or _line_problems(values, row, towns)
            if not problems:
                key = (
                    values["unit"],
                    values["town"],
                    values["village"],
                    _parse_date(values["since"]),
                )
                if key in seen:
                    problems.append(_("与第 %(line)d 行重复", line=seen[key]))
                seen[key] = number
            if problems:
                errors.append((number, "；".join(problems)))
                continue
            lines.append(
                RosterLine(
                    number,
                    values["unit"],
                    values["town"],
                    values["village"],
                    _parse_date(values["since"]),
                    _parse_date(values["until"]) if values["until"] else None,
                    values["note"],
                )
            )
    except csv.Error as error:  # e.g. a cell longer than the csv module reads
        errors.append((reader.line_num, _("无法读取该行：%(error)s", error=str(error))))
    if errors:
        raise RowErrors(
            _("名单中有 %(n)d 行有误，未导入任何内容", n=len(errors)), errors[:MAX_SHOWN_ERRORS]
        )
    if not lines:
        raise RowErrors(_("名单是空的"), [(2, _("没有数据行"))])
    return lines


def _line_problems(values: dict[str, str], row: dict, towns: set[str]) -> list[str]:
    problems = []
    for column in ("unit", "town", "village", "since"):
        if not values[column]:
            problems.append(_("%(column)s 为空", column=column))
    if values["town"] and values["town"] not in towns:
        problems.append(_("未知的镇（街道）：%(town)s", town=shown(values["town"])))
    since = until = None
    if values["since"]:
        try:
            since = _parse_date(values["since"])
        except ValueError:
            problems.append(_("开始日期格式应为 YYYY-MM-DD：%(v)s", v=shown(values["since"])))
    if values["until"]:
        try:
            until = _parse_date(values["until"])
        except ValueError:
            problems.append(_("结束日期格式应为 YYYY-MM-DD：%(v)s", v=shown(values["until"])))
    if since and until and until < since:
        problems.append(_("结束日期早于开始日期"))
    if row.get(None):  # DictReader puts surplus cells under the key None
        problems.append(_("列数多于表头"))
    return problems


def import_roster(raw: bytes, *, actor: Actor | None = None) -> RosterResult:
    """Import a pairing roster (unit,town,village,since,until,note): all lines or none.

    Towns must exist; units and villages named for the first time are created. A line that
    repeats a pairing already on file (same unit, village and start) updates its end and note.
    An import that changed anything is one audit event with the counts.
    """
    lines = parse_roster(raw)
    result = RosterResult()
    try:
        towns = {t.name: t for t in db.session.scalars(select(Town))}
        units = {u.name: u for u in db.session.scalars(select(Unit))}
        villages = {(v.town_id, v.name): v for v in db.session.scalars(select(Village))}
        line_of: dict[int, int] = {}
        for line in lines:
            town = towns[line.town]
            unit = units.get(line.unit)
            if unit is None:
                unit = units[line.unit] = Unit(name=line.unit)
                db.session.add(unit)
                result.units_created.append(line.unit)
            village = villages.get((town.id, line.village))
            if village is None:
                village = villages[(town.id, line.village)] = Village(
                    town=town, name=line.village, story=""
                )
                db.session.add(village)
                result.villages_created.append(f"{line.town}{line.village}")
            db.session.flush()
            existing = db.session.scalar(
                select(Pairing).where(
                    Pairing.unit_id == unit.id,
                    Pairing.village_id == village.id,
                    Pairing.since == line.since,
                )
            )
            if existing is not None:
                if (existing.until, existing.note) == (line.until, line.note):
                    result.pairings_unchanged += 1
                else:
                    existing.until, existing.note = line.until, line.note
                    result.pairings_updated += 1
                line_of[existing.id] = line.line
                continue
            pairing = Pairing(
                unit=unit, village=village, since=line.since, until=line.until, note=line.note
            )
            db.session.add(pairing)
            db.session.flush()
            line_of[pairing.id] = line.line
            result.pairings_created += 1
        _check_roster_capacity(line_of)
        if result.pairings_created or result.pairings_updated:
            audit.record(
                actor,
                "pairing.imported",
                ("Pairing", "roster"),
                after={
                    "created": result.pairings_created,
                    "updated": result.pairings_updated,
                    "unchanged": result.pairings_unchanged,
                    "units_created": len(result.units_created),
                    "villages_created": len(result.villages_created),
                },
                acting_as=_organizer(actor),
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


def _check_roster_capacity(line_of: dict[int, int]) -> None:
    """After the roster's pairings are flushed, name the lines that break the pairing rule."""
    touched = db.session.scalars(select(Pairing).where(Pairing.id.in_(line_of))).all()
    all_pairings = _pairings_touching({p.unit_id for p in touched}, {p.village_id for p in touched})
    errors: list[tuple[int, str]] = []
    for pairing in touched:
        same_village = [
            (p.since, p.until) for p in all_pairings if p.village_id == pairing.village_id
        ]
        same_unit = [(p.since, p.until) for p in all_pairings if p.unit_id == pairing.unit_id]
        if max_concurrent(same_village) > MAX_UNITS_PER_VILLAGE:
            errors.append(
                (line_of[pairing.id], _("该村同时结对的单位超过 %(n)d 个", n=MAX_UNITS_PER_VILLAGE))
            )
        elif max_concurrent(same_unit) > MAX_VILLAGES_PER_UNIT:
            errors.append(
                (line_of[pairing.id], _("该单位同时结对的村超过 %(n)d 个", n=MAX_VILLAGES_PER_UNIT))
            )
    if errors:
        raise RowErrors(_("名单中有 %(n)d 行有误，未导入任何内容", n=len(errors)), sorted(errors))
