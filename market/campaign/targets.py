"""Campaigns and unit targets: created and edited by the organizer, one by one, by a default for
every unit, or from an uploaded XLSX/CSV sheet (all rows or none, like the pairing roster)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from market.accounts.models import User
from market.audit import services as audit
from market.campaign.models import AttributionEntry, Campaign, UnitTarget
from market.directory.models import Unit
from market.errors import DomainError, NotFound, RowErrors
from market.extensions import db
from market.money import InvalidAmount, parse_yuan
from market.security.inputs import MAX_IMPORT_ROWS
from market.transactions import commit_unique

# ¥10,000,000.00: far above any unit's yearly target, well inside a 32-bit fen column.
MAX_TARGET_FEN = 1_000_000_000


def get_campaign(campaign_id: int) -> Campaign:
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(_("找不到该活动"))
    return campaign


# -- campaigns -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignData:
    name: str
    year: int
    starts_on: date
    ends_on: date
    paired_only: bool
    laggard_threshold_pct: int


def save_campaign(data: CampaignData, campaign: Campaign | None = None) -> Campaign:
    """A campaign ends on or after it starts, overlaps no other campaign (the ledger credits a
    sale to the one campaign running that day), and keeps every entry already credited to it
    inside its dates (entries are never changed)."""
    if data.ends_on < data.starts_on:
        raise DomainError(_("结束日期不能早于开始日期"), field="ends_on")
    if not 0 <= data.laggard_threshold_pct <= 100:
        raise DomainError(_("提醒线应在 0 到 100 之间"), field="laggard_threshold_pct")
    overlapping = db.session.scalar(
        select(Campaign)
        .where(Campaign.starts_on <= data.ends_on, Campaign.ends_on >= data.starts_on)
        .where(Campaign.id != (campaign.id if campaign else -1))
        .limit(1)
    )
    if overlapping is not None:
        raise DomainError(
            _("与活动「%(name)s」的日期重叠", name=overlapping.name), field="starts_on"
        )
    if campaign is not None:
        outside = db.session.scalar(
            select(func.count(AttributionEntry.id)).where(
                AttributionEntry.campaign_id == campaign.id,
                or_(AttributionEntry.day < data.starts_on, AttributionEntry.day > data.ends_on),
            )
        )
        if outside:
            raise DomainError(
                _("已有 %(n)d 笔台账记录在新的日期范围之外，不能这样改", n=outside),
                field="starts_on",
            )
    campaign = campaign or Campaign()
    campaign.name = data.name.strip()
    campaign.year = data.year
    campaign.starts_on, campaign.ends_on = data.starts_on, data.ends_on
    campaign.paired_only = data.paired_only
    campaign.laggard_threshold_pct = data.laggard_threshold_pct
    db.session.add(campaign)
    db.session.commit()
    return campaign


# -- amounts -------------------------------------------------------------------------------------
def parse_target_yuan(value) -> int:
    """A target in yuan ('50000', '50,000.5', '¥50，000元' or a spreadsheet's number) -> fen,
    by the shop's one parser (market.money.parse_yuan) with the targets' bound. Raises
    ValueError with a message the organizer can read."""
    try:
        return parse_yuan(value, max_fen=MAX_TARGET_FEN)
    except InvalidAmount as error:
        if error.reason == "negative":
            raise ValueError(_("目标金额不能为负数")) from None
        if error.reason == "too_large":
            raise ValueError(_("目标金额过大：%(v)s", v=str(value))) from None
        if isinstance(value, bool):
            raise ValueError(_("目标金额应为数字")) from None
        raise ValueError(_("目标金额应为最多两位小数的元数：%(v)s", v=str(value))) from None


def _audit_targets(
    actor: User | None, action: str, campaign: Campaign, after: dict, before: dict | None = None
) -> None:
    """Target changes are audited on their campaign (a removed target has no row left)."""
    audit.record(
        actor,
        action,
        campaign,
        before=before,
        after=after,
        acting_as="organizer" if actor is not None and actor.is_organizer else None,
    )


# -- one by one, and a default -------------------------------------------------------------------
def set_target(
    campaign_id: int, unit_id: int, amount_fen: int | None, *, actor: User | None = None
) -> UnitTarget | None:
    """Set a unit's target; None removes it (the unit is then not assessed). A change is
    audited with the amount before and after."""
    campaign = get_campaign(campaign_id)
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(_("找不到该单位"))
    if amount_fen is not None and not 0 <= amount_fen <= MAX_TARGET_FEN:
        raise DomainError(_("目标金额不正确"), field="amount")
    target = db.session.scalar(
        select(UnitTarget).where(
            UnitTarget.campaign_id == campaign_id, UnitTarget.unit_id == unit_id
        )
    )
    old_fen = target.amount_fen if target is not None else None
    if old_fen != amount_fen:
        _audit_targets(
            actor,
            "target.set",
            campaign,
            {"unit": unit.name, "amount_fen": amount_fen},
            before={"unit": unit.name, "amount_fen": old_fen},
        )
    if amount_fen is None:
        if target is not None:
            db.session.delete(target)
        db.session.commit()
        return None
    if target is None:
        target = UnitTarget(campaign_id=campaign_id, unit_id=unit_id)
        db.session.add(target)
    target.amount_fen = amount_fen
    commit_unique(_("该单位的目标刚被别人修改，请刷新后重试"))
    return target


def set_default_target(
    campaign_id: int, amount_fen: int, replace_existing: bool, *, actor: User | None = None
) -> int:
    """Give every unit without a target this one (every unit, if `replace_existing`). Returns
    how many targets were set. One audit event says how many were created and replaced."""
    campaign = get_campaign(campaign_id)
    if not 0 <= amount_fen <= MAX_TARGET_FEN:
        raise DomainError(_("目标金额不正确"), field="amount")
    existing = {
        t.unit_id: t
        for t in db.session.scalars(select(UnitTarget).where(UnitTarget.campaign_id == campaign_id))
    }
    created = replaced = 0
    for unit_id in db.session.scalars(select(Unit.id)):
        target = existing.get(unit_id)
        if target is None:
            db.session.add(
                UnitTarget(campaign_id=campaign_id, unit_id=unit_id, amount_fen=amount_fen)
            )
            created += 1
        elif replace_existing and target.amount_fen != amount_fen:
            target.amount_fen = amount_fen
            replaced += 1
    if created or replaced:
        _audit_targets(
            actor,
            "target.default_set",
            campaign,
            {
                "amount_fen": amount_fen,
                "replace_existing": replace_existing,
                "created": created,
                "replaced": replaced,
            },
            before={"with_target": len(existing)},
        )
    commit_unique(_("目标刚被别人修改，请刷新后重试"))
    return created + replaced


# -- upload --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetLine:
    line: int
    unit_id: int
    amount_fen: int


def _is_xlsx(raw: bytes) -> bool:
    return raw[:4] == b"PK\x03\x04"


def _xlsx_rows(raw: bytes) -> list[tuple[int, list]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception:  # a damaged or non-Excel zip: report it as the file's problem
        raise RowErrors(_("无法读取该 Excel 文件"), [(1, _("文件不是有效的 XLSX"))]) from None
    try:
        sheet = workbook.worksheets[0]
        rows = []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            rows.append((number, list(row)))
            if number > MAX_IMPORT_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def _csv_rows(raw: bytes) -> list[tuple[int, list]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise RowErrors(_("文件编码无法识别，请保存为 UTF-8 CSV"), [(1, _("无法识别的编码"))])
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, list(row)))
            if len(rows) > MAX_IMPORT_ROWS + 1:
                break
    except csv.Error as error:  # e.g. a cell longer than the csv module reads
        raise RowErrors(_("无法读取该文件"), [(reader.line_num, str(error))]) from None
    return rows


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def parse_targets(raw: bytes) -> list[TargetLine]:
    """Read a sheet of (unit name, target in yuan), XLSX or CSV, with or without a header row.
    Every bad line is reported with its number; nothing is returned unless all lines are good."""
    rows = _xlsx_rows(raw) if _is_xlsx(raw) else _csv_rows(raw)
    rows = [(number, cells) for number, cells in rows if not all(_blank(c) for c in cells)]
    if len(rows) > MAX_IMPORT_ROWS + 1:
        raise RowErrors(_("行数过多"), [(1, _("最多 %(n)d 行", n=MAX_IMPORT_ROWS))])
    units = {
        name.strip(): unit_id for unit_id, name in db.session.execute(select(Unit.id, Unit.name))
    }
    if rows:
        # A header row names no unit and has no amount; a first data row with a bad amount is
        # still a data row, and reported.
        first = [*rows[0][1], None, None]
        try:
            parse_target_yuan(first[1])
        except ValueError:
            if str(first[0] or "").strip() not in units:
                rows = rows[1:]
    lines: list[TargetLine] = []
    errors: list[tuple[int, str]] = []
    seen: dict[int, int] = {}
    for number, cells in rows:
        cells = [*cells, None, None]
        name = str(cells[0]).strip() if not _blank(cells[0]) else ""
        problems = []
        unit_id = None
        if not name:
            problems.append(_("单位名称为空"))
        else:
            unit_id = units.get(name)
            if unit_id is None:
                problems.append(_("未知的单位：%(unit)s", unit=name))
        amount = None
        if _blank(cells[1]):
            problems.append(_("目标金额为空"))
        else:
            try:
                amount = parse_target_yuan(cells[1])
            except ValueError as error:
                problems.append(str(error))
        if any(not _blank(c) for c in cells[2:]):
            problems.append(_("多于两列：只需要单位名称和目标（元）"))
        if unit_id is not None and not problems:
            if unit_id in seen:
                problems.append(_("与第 %(line)d 行重复", line=seen[unit_id]))
            seen[unit_id] = number
        if problems:
            errors.append((number, "；".join(problems)))
            continue
        assert unit_id is not None and amount is not None
        lines.append(TargetLine(number, unit_id, amount))
    if errors:
        raise RowErrors(_("目标表中有 %(n)d 行有误，未导入任何内容", n=len(errors)), errors)
    if not lines:
        raise RowErrors(_("目标表是空的"), [(1, _("没有数据行"))])
    return lines


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def import_targets(campaign_id: int, raw: bytes, *, actor: User | None = None) -> ImportResult:
    """Set the targets named in an uploaded sheet: all rows or none. Units not in the sheet keep
    their targets. An import that changed anything is one audit event with the counts."""
    campaign = get_campaign(campaign_id)
    lines = parse_targets(raw)
    existing = {
        t.unit_id: t
        for t in db.session.scalars(select(UnitTarget).where(UnitTarget.campaign_id == campaign_id))
    }
    created = updated = unchanged = 0
    for line in lines:
        target = existing.get(line.unit_id)
        if target is None:
            db.session.add(
                UnitTarget(
                    campaign_id=campaign_id, unit_id=line.unit_id, amount_fen=line.amount_fen
                )
            )
            created += 1
        elif target.amount_fen != line.amount_fen:
            target.amount_fen = line.amount_fen
            updated += 1
        else:
            unchanged += 1
    if created or updated:
        _audit_targets(
            actor,
            "target.imported",
            campaign,
            {"created": created, "updated": updated, "unchanged": unchanged},
        )
    commit_unique(_("目标刚被别人修改，请刷新后重试"))
    return ImportResult(created, updated, unchanged)


def targets_page(campaign_id: int) -> tuple[Campaign, list[tuple[int, str, int | None]]]:
    """The campaign and every unit with its target (None when it has none), by name."""
    campaign = get_campaign(campaign_id)
    targets = dict(
        db.session.execute(
            select(UnitTarget.unit_id, UnitTarget.amount_fen).where(
                UnitTarget.campaign_id == campaign_id
            )
        ).all()
    )
    units = db.session.execute(select(Unit.id, Unit.name).order_by(Unit.name)).all()
    return campaign, [(unit_id, name, targets.get(unit_id)) for unit_id, name in units]
