"""Recording batches, receiving stock into them, closing them, and picking each shipped line's
batch. Each public function is one transaction; `receive_into_new_batch` and `allocate_lines`
only flush, for services of other packages (presales, shipping) to call inside theirs.

Ownership: a co-op manager works only on the batches of their co-ops' SKUs (admins on any);
someone else's batch or SKU is a 404, so that ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Protocol

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.datastructures import FileStorage

from market import clock
from market.accounts.models import User
from market.audit import services as audit
from market.batches.models import Batch, BatchStatus, InspectionResult, inspection_result_of
from market.catalog.models import Product, Sku
from market.errors import DomainError, NotFound
from market.extensions import db
from market.transactions import unit_of_work
from market.uploads import inspect_document, store_private_document

MAX_QUANTITY = 1_000_000  # as catalog.services.MAX_STOCK: no batch holds more than a SKU may
MAX_PLOT = 80
MAX_NOTES = 2000
REPORT_FOLDER = "inspections"
# How old a harvest may be recorded (a dried 南药 keeps for years) and how far ahead (none).
OLDEST_HARVEST_YEARS = 10


def _manages(user: User, coop_id: int) -> bool:
    return user.is_admin or coop_id in {c.id for c in user.managed_coops()}


def coop_sku(user: User, sku_id: int) -> Sku:
    """A SKU of one of the user's co-ops; anything else is a 404."""
    sku = db.session.get(Sku, sku_id)
    if sku is None or not _manages(user, sku.product.coop_id):
        raise NotFound(_("找不到该规格"))
    return sku


def coop_batch(user: User, batch_id: int, *, for_update: bool = False) -> Batch:
    """A batch of one of the user's co-ops; anything else is a 404."""
    batch = db.session.get(Batch, batch_id, with_for_update=for_update)
    if batch is None or not _manages(user, batch.sku.product.coop_id):
        raise NotFound(_("找不到该批次"))
    return batch


def _check(harvested_on: date | None, plot: str, quantity: int, notes: str) -> None:
    today = clock.today()
    if harvested_on is None:
        raise DomainError(_("请填写采收或生产日期"), field="harvested_on")
    if harvested_on > today:
        raise DomainError(_("采收日期不能晚于今天"), field="harvested_on")
    if harvested_on.year < today.year - OLDEST_HARVEST_YEARS:
        raise DomainError(_("采收日期太早了"), field="harvested_on")
    if len(plot.strip()) > MAX_PLOT:
        raise DomainError(_("地块/塘口不能超过 %(n)d 个字", n=MAX_PLOT), field="plot")
    if len(notes) > MAX_NOTES:
        raise DomainError(_("备注不能超过 %(n)d 个字", n=MAX_NOTES), field="notes")
    if not 0 <= quantity <= MAX_QUANTITY:
        raise DomainError(_("数量应在 0 到 %(n)d 之间", n=MAX_QUANTITY), field="quantity")


def _result(value: InspectionResult | str) -> InspectionResult:
    try:
        return inspection_result_of(value)
    except ValueError:
        raise DomainError(_("请选择检测结果"), field="inspection_result") from None


def _add_stock(sku: Sku, quantity: int) -> int:
    """Add to the SKU's stock in one conditional UPDATE (orders take stock concurrently)."""
    stock_after = db.session.execute(
        update(Sku)
        .where(Sku.id == sku.id, Sku.stock + quantity <= MAX_QUANTITY)
        .values(stock=Sku.stock + quantity)
        .returning(Sku.stock)
        .execution_options(synchronize_session=False)
    ).scalar()
    if stock_after is None:
        raise DomainError(_("入库后库存不能超过 %(n)d", n=MAX_QUANTITY), field="quantity")
    db.session.expire(sku, ["stock"])
    return stock_after


def receive_into_new_batch(
    sku: Sku,
    *,
    harvested_on: date,
    plot: str,
    quantity: int,
    inspection_result: InspectionResult | str = "未检",
    notes: str = "",
    inspection_path: str | None = None,
    actor: User | None = None,
) -> Batch:
    """A new open batch of `sku` holding `quantity`, received into the SKU's stock as well.
    Flushes only: the caller's service owns the transaction (record_batch, a presale's
    harvest). Refuses a future or implausible date, a negative quantity."""
    _check(harvested_on, plot, quantity, notes)
    result = _result(inspection_result)
    stock_after = _add_stock(sku, quantity)
    batch = Batch(
        sku_id=sku.id,
        harvested_on=harvested_on,
        plot=plot.strip(),
        quantity_received=quantity,
        quantity_remaining=quantity,
        inspection_result=result,
        inspection_path=inspection_path,
        notes=notes.strip(),
        status=BatchStatus.OPEN,
    )
    db.session.add(batch)
    db.session.flush()
    audit.record(
        actor,
        "batch.recorded",
        batch,
        after={
            "code": batch.code,
            "sku_id": sku.id,
            "quantity": quantity,
            "stock": stock_after,
            "inspection": result.value,
        },
    )
    return batch


def _store_report(report: FileStorage | None) -> str | None:
    """The inspection report, kept privately once its bytes prove it a PDF, an OFD or a
    picture (the name and the browser's content type prove nothing)."""
    if report is None or not report.filename:
        return None
    limit = current_app.config["MAX_INVOICE_BYTES"]
    head = report.stream.read(limit + 1)
    report.stream.seek(0)
    if head and len(head) <= limit:
        try:
            inspect_document(head)
        except DomainError:
            raise DomainError(
                _("检测报告只接受 PDF、OFD 或 JPEG/PNG/WebP 图片"), field="report"
            ) from None
    try:
        return store_private_document(report, REPORT_FOLDER)
    except DomainError as error:  # too big, empty
        raise DomainError(str(error), field="report") from None


def _remove_report(path: str | None) -> None:
    if path:
        (Path(current_app.config["PRIVATE_UPLOAD_DIR"]) / path).unlink(missing_ok=True)


@unit_of_work
def record_batch(
    user: User,
    sku_id: int,
    *,
    harvested_on: date,
    plot: str,
    quantity: int,
    inspection_result: InspectionResult | str = "未检",
    notes: str = "",
    report: FileStorage | None = None,
) -> Batch:
    """The co-op of the SKU records a batch: its quantity is received into the SKU's stock and
    the batch in one transaction; an inspection report (PDF, OFD or picture, checked by its
    content) is stored privately and shown only through the batch's trace page."""
    sku = coop_sku(user, sku_id)
    _check(harvested_on, plot, quantity, notes)
    _result(inspection_result)
    path = _store_report(report)
    try:
        batch = receive_into_new_batch(
            sku,
            harvested_on=harvested_on,
            plot=plot,
            quantity=quantity,
            inspection_result=inspection_result,
            notes=notes,
            inspection_path=path,
            actor=user,
        )
        db.session.commit()
    except BaseException:
        _remove_report(path)
        raise
    return batch


@unit_of_work
def receive_stock(user: User, batch_id: int, quantity: int) -> Batch:
    """More of an open batch comes in: added to the batch and to the SKU's stock at once."""
    batch = coop_batch(user, batch_id, for_update=True)
    if not batch.is_open:
        raise DomainError(_("批次已结束，不能再入库"), field="quantity")
    if not 0 < quantity <= MAX_QUANTITY:
        raise DomainError(_("数量应在 1 到 %(n)d 之间", n=MAX_QUANTITY), field="quantity")
    if batch.quantity_received + quantity > MAX_QUANTITY:
        raise DomainError(_("批次数量不能超过 %(n)d", n=MAX_QUANTITY), field="quantity")
    stock_after = _add_stock(batch.sku, quantity)
    batch.quantity_received += quantity
    batch.quantity_remaining += quantity
    audit.record(
        user,
        "batch.received",
        batch,
        after={"quantity": quantity, "remaining": batch.quantity_remaining, "stock": stock_after},
    )
    db.session.commit()
    return batch


@unit_of_work
def set_inspection(
    user: User, batch_id: int, inspection_result: InspectionResult | str, report: FileStorage | None
) -> Batch:
    """The inspection result arrives after the batch was recorded; a new report replaces the
    old one on the trace page."""
    batch = coop_batch(user, batch_id, for_update=True)
    result = _result(inspection_result)
    before = batch.inspection_result.value
    path = _store_report(report)
    batch.inspection_result = result
    if path:
        batch.inspection_path = path
    audit.record(
        user,
        "batch.inspection",
        batch,
        before={"inspection": before},
        after={"inspection": result.value, "report": bool(path)},
    )
    db.session.commit()
    return batch


@unit_of_work
def close_batch(user: User, batch_id: int) -> Batch:
    """The co-op ends a batch: it ships nothing more (its stock stays the SKU's, unbatched)."""
    batch = coop_batch(user, batch_id, for_update=True)
    batch.move_to(BatchStatus.CLOSED)
    audit.record(user, "batch.closed", batch, after={"remaining": batch.quantity_remaining})
    db.session.commit()
    return batch


# -- shipping: each line's batch ---------------------------------------------------------------
class ShippedLine(Protocol):
    """What allocation needs of an order line (orders.models.OrderLine)."""

    id: int
    sku_id: int
    quantity: int
    batch_id: int | None


NO_BATCH = "none"  # the co-op ships this line from stock outside any batch


def _take(batch_id: int, quantity: int) -> int | None:
    """Take `quantity` from an open batch in one conditional UPDATE; None if it cannot."""
    return db.session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.status == BatchStatus.OPEN,
            Batch.quantity_remaining >= quantity,
        )
        .values(quantity_remaining=Batch.quantity_remaining - quantity)
        .returning(Batch.quantity_remaining)
        .execution_options(synchronize_session=False)
    ).scalar()


def open_batches_of(sku_ids: Iterable[int]) -> dict[int, list[Batch]]:
    """Each SKU's open batches with something left, oldest harvest first (the default pick)."""
    ids = sorted(set(sku_ids))
    found: dict[int, list[Batch]] = {sku_id: [] for sku_id in ids}
    if not ids:
        return found
    batches = db.session.scalars(
        select(Batch)
        .where(
            Batch.sku_id.in_(ids),
            Batch.status == BatchStatus.OPEN,
            Batch.quantity_remaining > 0,
        )
        .order_by(Batch.harvested_on, Batch.id)
    )
    for batch in batches:
        found[batch.sku_id].append(batch)
    return found


def allocate_lines(lines: Iterable[ShippedLine], picks: Mapping[int, str | int | None]) -> None:
    """Give every line without a batch the batch it ships from: the one picked for it (a batch
    id, or NO_BATCH), else the oldest open batch of its SKU with enough left, else none (stock
    from before batches). The batch's remaining quantity goes down; a batch whose last unit
    ships closes. A picked batch of another SKU, closed, or short is refused with the line's
    field. Flushes only (orders.lifecycle.ship owns the transaction)."""
    lines = [line for line in lines if line.batch_id is None]
    candidates = open_batches_of(line.sku_id for line in lines)
    for line in lines:
        pick = picks.get(line.id)
        field = f"batch-{line.id}"
        if pick == NO_BATCH:
            continue
        if pick not in (None, ""):
            try:
                batch_id = int(pick)
            except (TypeError, ValueError):
                raise DomainError(_("请选择有效的批次"), field=field) from None
            batch = db.session.get(Batch, batch_id)
            if batch is None or batch.sku_id != line.sku_id:
                raise DomainError(_("所选批次不是该商品规格的批次"), field=field)
            if _take(batch.id, line.quantity) is None:
                db.session.refresh(batch)
                if not batch.is_open:
                    raise DomainError(
                        _("批次 %(code)s 已结束，不能再发货", code=batch.code), field=field
                    )
                raise DomainError(
                    _(
                        "批次 %(code)s 只剩 %(n)d，不够发 %(q)d",
                        code=batch.code,
                        n=batch.quantity_remaining,
                        q=line.quantity,
                    ),
                    field=field,
                )
            chosen = batch
        else:
            chosen = None
            for batch in candidates.get(line.sku_id, []):
                if _take(batch.id, line.quantity) is not None:
                    chosen = batch
                    break
            if chosen is None:
                continue
        db.session.refresh(chosen)
        if chosen.quantity_remaining == 0:
            chosen.move_to(BatchStatus.CLOSED)
        line.batch_id = chosen.id
    db.session.flush()


# -- reading -------------------------------------------------------------------------------------
def coop_batches(user: User, product_id: int | None = None) -> list[Batch]:
    """The batches of the user's co-ops (of one product if given), newest first."""
    coop_ids = [c.id for c in user.managed_coops()]
    query = (
        select(Batch)
        .join(Sku, Sku.id == Batch.sku_id)
        .join(Product, Product.id == Sku.product_id)
        .options(contains_eager(Batch.sku).contains_eager(Sku.product))
        .order_by(Batch.status, Batch.harvested_on.desc(), Batch.id.desc())
    )
    if not user.is_admin:
        query = query.where(Product.coop_id.in_(coop_ids))
    if product_id is not None:
        query = query.where(Product.id == product_id)
    return list(db.session.scalars(query))


def preload_batches(lines: Iterable[ShippedLine]) -> None:
    """Load the batches of these order lines in one query and hand each line its own, so that
    a page listing lines does not ask once per line."""
    lines = list(lines)
    ids = sorted({line.batch_id for line in lines if line.batch_id is not None})
    if not ids:
        return
    found = {
        batch.id: batch for batch in db.session.scalars(select(Batch).where(Batch.id.in_(ids)))
    }
    for line in lines:
        if line.batch_id is not None:
            set_committed_value(line, "batch", found.get(line.batch_id))


def batch_by_code(code: str) -> Batch:
    """The batch a trace code names (codes are upper case; a phone may type them lower)."""
    code = (code or "").strip().upper()
    batch = None
    if 0 < len(code) <= 12 and code.isalnum():
        batch = db.session.scalar(select(Batch).where(Batch.code == code))
    if batch is None:
        raise NotFound(_("找不到该批次"))
    return batch
