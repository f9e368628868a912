"""以买代帮: a coordinator drafts a purchase, an approver of the same unit (never the person who
drafted it) approves or rejects it; on approval it becomes one order per co-op, stock taken then,
paid by bank transfer (with the invoice details kept) or online. The unit's overview of its
purchases against its yearly target."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import UnitRole, User
from market.catalog.models import ProductStatus, Sku
from market.clock import day_start
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import carts
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderMode
from market.payments import services as payments
from market.procurement.models import (
    PurchaseEvent,
    PurchaseStatus,
    PurchaseTarget,
    Purpose,
    UnitPurchase,
    UnitPurchaseLine,
    UnitPurchaseOrder,
)
from market.procurement.roles import unit_membership
from market.transactions import unit_of_work


def _event(purchase: UnitPurchase, actor: User | None, text: str) -> None:
    purchase.events.append(
        PurchaseEvent(actor_id=actor.id if actor else None, at=utcnow(), text=text)
    )


@dataclass(frozen=True)
class PurchaseData:
    purpose: Purpose
    purpose_note: str
    recipient: str
    phone: str
    address: str
    invoice_title: str
    invoice_tax_id: str
    pay_online: bool
    lines: dict[int, int]  # sku id -> quantity


_PURCHASE_LINES = (
    selectinload(UnitPurchase.lines).joinedload(UnitPurchaseLine.sku).joinedload(Sku.product),
)


def purchase_for(user: User, purchase_id: int, *, for_update: bool = False) -> UnitPurchase:
    """A purchase of the user's own unit (or any, for organizers); others are a 404."""
    purchase = db.session.get(
        UnitPurchase,
        purchase_id,
        with_for_update=for_update,
        populate_existing=for_update,
        # Its page lists the lines with their products.
        options=() if for_update else _PURCHASE_LINES,
    )
    unit = user.unit
    if purchase is None or not (
        user.is_admin or user.is_organizer or (unit is not None and unit.id == purchase.unit_id)
    ):
        raise NotFound(_("找不到该采购单"))
    return purchase


def _apply_purchase(purchase: UnitPurchase, data: PurchaseData) -> None:
    for name in ("recipient", "phone", "address", "invoice_title", "invoice_tax_id"):
        if not getattr(data, name).strip():
            raise DomainError(_("请填写完整的收货和发票信息"), field=name)
    if not data.lines:
        raise DomainError(_("请至少选择一个商品"), field="lines")
    for sku_id, quantity in data.lines.items():
        carts.check_quantity(quantity)
        sku = db.session.get(Sku, sku_id)
        if sku is None or not sku.active or sku.product.status != ProductStatus.LISTED:
            raise NotFound(_("该商品已下架或不存在"))
        if quantity > sku.stock:
            raise DomainError(
                _(
                    "%(name)s（%(spec)s）库存只有 %(stock)d 件",
                    name=sku.product.name,
                    spec=sku.spec,
                    stock=sku.stock,
                ),
                field="lines",
            )
    purchase.purpose = data.purpose
    purchase.purpose_note = data.purpose_note.strip()
    purchase.recipient = data.recipient.strip()
    purchase.phone = data.phone.strip()
    purchase.address = data.address.strip()
    purchase.invoice_title = data.invoice_title.strip()
    purchase.invoice_tax_id = data.invoice_tax_id.strip().upper()
    purchase.pay_online = data.pay_online
    if purchase.lines:
        # The old lines go first: the new ones may repeat their SKUs (unique per purchase).
        purchase.lines.clear()
        db.session.flush()
    purchase.lines = [UnitPurchaseLine(sku_id=s, quantity=q) for s, q in data.lines.items()]


@unit_of_work
def draft_purchase(coordinator: User, data: PurchaseData) -> UnitPurchase:
    membership = unit_membership(coordinator, UnitRole.COORDINATOR)
    purchase = UnitPurchase(unit_id=membership.unit_id, created_by_id=coordinator.id)
    _apply_purchase(purchase, data)
    _event(purchase, coordinator, _("起草采购单"))
    db.session.add(purchase)
    db.session.commit()
    return purchase


@unit_of_work
def update_purchase(coordinator: User, purchase_id: int, data: PurchaseData) -> UnitPurchase:
    unit_membership(coordinator, UnitRole.COORDINATOR)
    purchase = purchase_for(coordinator, purchase_id, for_update=True)
    if purchase.status == PurchaseStatus.REJECTED:
        purchase.move_to(PurchaseStatus.DRAFT)
    if purchase.status != PurchaseStatus.DRAFT:
        raise DomainError(_("只有草稿可以修改"))
    _apply_purchase(purchase, data)
    _event(purchase, coordinator, _("修改采购单"))
    db.session.commit()
    return purchase


@unit_of_work
def submit_purchase(coordinator: User, purchase_id: int) -> UnitPurchase:
    unit_membership(coordinator, UnitRole.COORDINATOR)
    purchase = purchase_for(coordinator, purchase_id, for_update=True)
    purchase.move_to(PurchaseStatus.SUBMITTED)
    _event(purchase, coordinator, _("提交审批"))
    notify(
        recipients.unit_approver_ids(purchase.unit_id),
        "purchase.submitted",
        _l("采购单待审批：%(amount)s", amount=format_fen(purchase.total_fen)),
        _l("%(name)s 提交了采购单，请核对后批准或驳回。", name=coordinator.name),
        recipients.link_to("procurement.purchase", purchase_id=purchase.id),
    )
    db.session.commit()
    return purchase


def _claim_decision(purchase_id: int, status: PurchaseStatus, approver: User, note: str) -> bool:
    """One decision wins, even with two approvers clicking at once."""
    return (
        db.session.execute(
            update(UnitPurchase)
            .where(UnitPurchase.id == purchase_id, UnitPurchase.may_become(status))
            .values(status=status, decided_by_id=approver.id, decision_note=note)
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def _check_approver(approver: User, purchase: UnitPurchase) -> None:
    membership = approver.confirmed_unit_membership()
    if membership is None or membership.unit_id != purchase.unit_id:
        raise NotFound(_("找不到该采购单"))
    if membership.role != UnitRole.APPROVER:
        raise NotAllowed(_("只有本单位的审批人可以审批"))
    if purchase.created_by_id == approver.id:
        raise NotAllowed(_("不能审批自己起草的采购单"))


@unit_of_work
def reject_purchase(approver: User, purchase_id: int, reason: str) -> UnitPurchase:
    """Rejected: no order, no stock taken. The coordinator may revise and resubmit."""
    purchase = db.session.get(UnitPurchase, purchase_id)
    if purchase is None:
        raise NotFound(_("找不到该采购单"))
    _check_approver(approver, purchase)
    if not reason.strip():
        raise DomainError(_("请填写驳回原因"), field="reason")
    if not _claim_decision(purchase.id, PurchaseStatus.REJECTED, approver, reason.strip()[:300]):
        raise Conflict(_("该采购单已审批过"))
    purchase = db.session.get(UnitPurchase, purchase_id, populate_existing=True)
    _event(purchase, approver, _("驳回：%(reason)s", reason=reason.strip()))
    notify(
        [purchase.created_by_id],
        "purchase.rejected",
        _l("采购单被驳回：%(amount)s", amount=format_fen(purchase.total_fen)),
        _l("驳回原因：%(reason)s。修改后可再次提交。", reason=reason.strip()),
        recipients.link_to("procurement.purchase", purchase_id=purchase.id),
    )
    db.session.commit()
    return purchase


def purchase_prices(purchase: UnitPurchase) -> dict[int, int]:
    """The unit prices the purchase page shows (today's), which its approve button sends back."""
    return {line.sku_id: line.sku.price_fen for line in purchase.lines}


def _check_shown_prices(purchase: UnitPurchase, shown_prices: Mapping[int, int]) -> None:
    """The approver approves the amounts their page showed: any other price refuses the
    approval, naming old -> new and the new total, so that approving again confirms them."""
    changes, changed = [], set()
    for line in purchase.lines:
        sku = line.sku
        if not sku.active or sku.product.status != ProductStatus.LISTED:
            raise NotFound(
                _("%(name)s（%(spec)s）已下架，请修改采购单", name=sku.product.name, spec=sku.spec)
            )
        shown = shown_prices.get(sku.id)
        if shown != sku.price_fen:
            changed.add(sku.id)
            old = format_fen(shown) if shown is not None else _("未显示")
            changes.append(f"{sku.product.name} {sku.spec}：{old} → {format_fen(sku.price_fen)}")
    if changes:
        raise carts.PricesChanged(
            changed,
            _(
                "价格有变动，尚未批准：%(changes)s。新的合计 %(total)s，请核对后再次批准。",
                changes="；".join(changes),
                total=format_fen(purchase.total_fen),
            ),
        )


@unit_of_work
def approve_purchase(
    approver: User, purchase_id: int, *, shown_prices: Mapping[int, int] | None = None
) -> UnitPurchase:
    """Approved: one order per co-op (mode unit_purchase, the unit set), stock taken now, all or
    nothing. Two approvals at once make one set of orders. With `shown_prices` (sku id -> the
    unit price the approver's page showed) the orders are made at exactly those prices, or not
    at all: a changed price leaves the purchase submitted (see `_check_shown_prices`)."""
    purchase = db.session.get(UnitPurchase, purchase_id)
    if purchase is None:
        raise NotFound(_("找不到该采购单"))
    _check_approver(approver, purchase)
    if not _claim_decision(purchase.id, PurchaseStatus.APPROVED, approver, ""):
        raise Conflict(_("该采购单已审批过"))
    purchase = db.session.get(UnitPurchase, purchase_id, populate_existing=True)
    if shown_prices is not None:
        _check_shown_prices(purchase, shown_prices)
    by_coop: dict[int, list[orders.WantedLine]] = defaultdict(list)
    for line in purchase.lines:
        by_coop[line.sku.product.coop_id].append(orders.WantedLine(line.sku_id, line.quantity))
    buyer = purchase.created_by
    for coop_id, wanted in sorted(by_coop.items()):
        order = orders.build_order(
            buyer,
            wanted,
            orders.Delivery(
                DeliveryMethod.DELIVERY, purchase.recipient, purchase.phone, purchase.address
            ),
            f"purchase-{purchase.id}-{coop_id}",
            mode=OrderMode.UNIT_PURCHASE,
            unit_id=purchase.unit_id,
            expires=False,
            # Checked again where the stock is taken, against a change committed meanwhile.
            shown_prices=shown_prices,
        )
        order.note = _(
            "发票：%(title)s（%(tax)s）",
            title=purchase.invoice_title,
            tax=purchase.invoice_tax_id,
        )[:300]
        db.session.add(UnitPurchaseOrder(purchase_id=purchase.id, order_id=order.id))
    _event(purchase, approver, _("批准，生成 %(n)d 张订单", n=len(by_coop)))
    notify(
        [purchase.created_by_id],
        "purchase.approved",
        _l("采购单已批准：%(amount)s", amount=format_fen(purchase.total_fen)),
        _l("已生成 %(n)d 张订单，请在采购单页面付款。", n=len(by_coop)),
        recipients.link_to("procurement.purchase", purchase_id=purchase.id),
    )
    db.session.commit()
    return purchase


@unit_of_work
def start_transfer(coordinator: User, purchase_id: int) -> None:
    """Pay the purchase's unpaid orders by bank transfer, all of them or none: the organizer
    (or each co-op) confirms receipt."""
    purchase = purchase_for(coordinator, purchase_id)
    for order in purchase.orders:
        if order.awaits_payment:  # before shipping, or after it (先货后款)
            locked = orders.order_of_buyer(order.buyer, order.number, for_update=True)
            payments.begin_payment(locked, "offline")
    db.session.commit()


def may_edit(purchase: UnitPurchase) -> bool:
    """A draft, or a rejected purchase being revised, may be changed; nothing after that."""
    return purchase.status in (PurchaseStatus.DRAFT, PurchaseStatus.REJECTED)


def may_decide(user: User, purchase: UnitPurchase) -> bool:
    """Whether the purchase's page offers `user` approve and reject: an approver, not the one
    who drafted it, while it waits for a decision (the services check it again)."""
    return (
        user.has_unit_role(UnitRole.APPROVER)
        and purchase.created_by_id != user.id
        and purchase.status == PurchaseStatus.SUBMITTED
    )


def purchase_order_for(user: User, purchase_id: int, order_id: int) -> tuple[UnitPurchase, Order]:
    """One of the orders a purchase of the user's unit became; any other is a 404."""
    purchase = purchase_for(user, purchase_id)
    order = next((order for order in purchase.orders if order.id == order_id), None)
    if order is None:
        raise NotFound(_("找不到该订单"))
    return purchase, order


def unit_purchases(unit_id: int) -> list[UnitPurchase]:
    return list(
        db.session.scalars(
            select(UnitPurchase)
            .where(UnitPurchase.unit_id == unit_id)
            # The list shows who drafted each, its lines with their products, its total (its
            # lines' prices) and the orders it became.
            .options(
                selectinload(UnitPurchase.lines)
                .joinedload(UnitPurchaseLine.sku)
                .joinedload(Sku.product),
                selectinload(UnitPurchase.orders),
                joinedload(UnitPurchase.created_by),
            )
            .order_by(UnitPurchase.id.desc())
        )
    )


@dataclass(frozen=True)
class Overview:
    by_status: dict[str, tuple[int, int]]  # status -> (count, amount fen)
    paid_this_year_fen: int
    target: PurchaseTarget | None

    @property
    def progress(self) -> float | None:
        if self.target is None:
            return None
        return min(1.0, self.paid_this_year_fen / self.target.amount_fen)


def overview(unit_id: int, year: int) -> Overview:
    by_status: dict[str, tuple[int, int]] = {}
    for purchase in unit_purchases(unit_id):
        count, amount = by_status.get(purchase.status.value, (0, 0))
        by_status[purchase.status.value] = (count + 1, amount + purchase.total_fen)
    paid = db.session.scalar(
        select(func.coalesce(func.sum(Order.paid_fen - Order.refunded_fen), 0)).where(
            Order.unit_id == unit_id,
            Order.mode == OrderMode.UNIT_PURCHASE,
            # The year is Beijing's: from 1 January 00:00 Asia/Shanghai.
            Order.paid_at >= day_start(date(year, 1, 1)),
            Order.paid_at < day_start(date(year + 1, 1, 1)),
        )
    )
    target = db.session.scalar(
        select(PurchaseTarget).where(PurchaseTarget.unit_id == unit_id, PurchaseTarget.year == year)
    )
    return Overview(by_status, int(paid or 0), target)


@unit_of_work
def set_target(coordinator: User, year: int, amount_fen: int) -> PurchaseTarget:
    membership = unit_membership(coordinator, UnitRole.COORDINATOR)
    if amount_fen <= 0:
        raise DomainError(_("目标金额必须大于 0"), field="amount")
    target = db.session.scalar(
        select(PurchaseTarget).where(
            PurchaseTarget.unit_id == membership.unit_id, PurchaseTarget.year == year
        )
    ) or PurchaseTarget(unit_id=membership.unit_id, year=year)
    target.amount_fen = amount_fen
    db.session.add(target)
    db.session.commit()
    return target
