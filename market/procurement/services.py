"""以买代帮: a coordinator drafts a purchase, an approver of the same unit (never the person who
drafted it) approves or rejects it; on approval it becomes one order per co-op, stock taken then,
paid by bank transfer (with the invoice details kept) or online.

产品定制: a unit asks for a custom product; co-ops of its paired villages see the request first,
all co-ops once the unit opens it; co-ops quote; the unit accepts exactly one quote and an order
at the quoted price follows."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.datastructures import FileStorage

from market.accounts.models import UnitRole, User
from market.catalog.models import Product, ProductStatus, Sku
from market.clock import day_start, today
from market.directory.models import Coop, Pairing, Unit, Village
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderLine, OrderMode
from market.payments import services as payments
from market.procurement.models import (
    CustomRequest,
    PurchaseEvent,
    PurchaseStatus,
    PurchaseTarget,
    Purpose,
    Quote,
    QuoteStatus,
    RequestStatus,
    UnitPurchase,
    UnitPurchaseLine,
    UnitPurchaseOrder,
)
from market.transactions import unit_of_work
from market.uploads import store_image


def _membership(user: User, *roles: UnitRole):
    membership = user.confirmed_unit_membership()
    if membership is None or membership.role not in roles:
        raise NotAllowed(_("只有本单位的联络员或审批人可以操作"))
    return membership


def _event(purchase: UnitPurchase, actor: User | None, text: str) -> None:
    purchase.events.append(
        PurchaseEvent(actor_id=actor.id if actor else None, at=utcnow(), text=text)
    )


# -- unit purchases --------------------------------------------------------------------------
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
        orders.check_quantity(quantity)
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
    membership = _membership(coordinator, UnitRole.COORDINATOR)
    purchase = UnitPurchase(unit_id=membership.unit_id, created_by_id=coordinator.id)
    _apply_purchase(purchase, data)
    _event(purchase, coordinator, _("起草采购单"))
    db.session.add(purchase)
    db.session.commit()
    return purchase


@unit_of_work
def update_purchase(coordinator: User, purchase_id: int, data: PurchaseData) -> UnitPurchase:
    _membership(coordinator, UnitRole.COORDINATOR)
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
    _membership(coordinator, UnitRole.COORDINATOR)
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
        raise orders.PricesChanged(
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


@dataclass(frozen=True)
class CoopDocument:
    order: Order
    lines: list[OrderLine]  # the co-op's own parcels' lines
    purchase: UnitPurchase | None


def coop_document_of(user: User, number: str) -> CoopDocument:
    """The co-op's copy of an order's purchase order or delivery note: only its own parcels'
    lines. A missing order is a 404, another co-op's a 403."""
    order = db.session.scalar(select(Order).where(Order.number == number))
    if order is None:
        raise NotFound(_("找不到该订单"))
    mine = {coop.id for coop in user.managed_coops()}
    shipments = [s for s in order.shipments if user.is_admin or s.coop_id in mine]
    if not shipments:
        raise NotAllowed(_("这不是您合作社的包裹"))
    purchase = db.session.scalar(
        select(UnitPurchase)
        .join(UnitPurchaseOrder, UnitPurchaseOrder.purchase_id == UnitPurchase.id)
        .where(UnitPurchaseOrder.order_id == order.id)
    )
    lines = [line for shipment in shipments for line in shipment.lines]
    return CoopDocument(order, lines, purchase)


@dataclass(frozen=True)
class InvoiceDetails:
    title: str
    tax_id: str
    address: str


def invoice_details_of(order: Order) -> InvoiceDetails:
    """What a unit already said when it ordered, to start its invoice request from: a
    purchase's 抬头 and 税号, a custom request's address, else the unit's name and the order's
    address."""
    title, tax_id, address = "", "", ""
    if order.mode == OrderMode.UNIT_PURCHASE:
        purchase = db.session.scalar(
            select(UnitPurchase)
            .join(UnitPurchaseOrder, UnitPurchaseOrder.purchase_id == UnitPurchase.id)
            .where(UnitPurchaseOrder.order_id == order.id)
        )
        if purchase is not None:
            title, tax_id = purchase.invoice_title, purchase.invoice_tax_id
    else:
        custom = db.session.scalar(select(CustomRequest).where(CustomRequest.order_id == order.id))
        title = order.unit.name if order.unit else ""
        if custom is not None and custom.address:
            address = custom.address
    return InvoiceDetails(title, tax_id, address or order.address)


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
    membership = _membership(coordinator, UnitRole.COORDINATOR)
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


# -- custom products ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestData:
    title: str
    description: str
    quantity: int
    budget_fen: int
    needed_by: date
    card_text: str
    packaging: str
    # The delivery address; without one the order goes to the unit's own address.
    recipient: str = ""
    phone: str = ""
    address: str = ""


@unit_of_work
def create_request(
    coordinator: User, data: RequestData, logo: FileStorage | None = None
) -> CustomRequest:
    membership = _membership(coordinator, UnitRole.COORDINATOR)
    if not data.title.strip():
        raise DomainError(_("请填写定制内容"), field="title")
    if data.quantity <= 0:
        raise DomainError(_("数量必须大于 0"), field="quantity")
    if data.budget_fen <= 0:
        raise DomainError(_("预算必须大于 0"), field="budget")
    if data.needed_by <= today():
        raise DomainError(_("需要日期必须晚于今天"), field="needed_by")
    request = CustomRequest(
        unit_id=membership.unit_id,
        created_by_id=coordinator.id,
        title=data.title.strip(),
        description=data.description.strip(),
        quantity=data.quantity,
        budget_fen=data.budget_fen,
        needed_by=data.needed_by,
        card_text=data.card_text.strip(),
        packaging=data.packaging.strip(),
        recipient=data.recipient.strip()[:60],
        phone=data.phone.strip()[:20],
        address=data.address.strip()[:300],
    )
    if logo is not None and logo.filename:
        request.logo_path = store_image(logo, "custom").path
    db.session.add(request)
    # The co-ops of the unit's paired villages see it first; the others once it is opened.
    _tell_coops_of_request(request, recipients.paired_coop_ids(request.unit_id))
    db.session.commit()
    return request


def _tell_coops_of_request(request: CustomRequest, coop_ids: set[int]) -> None:
    notify(
        recipients.coop_manager_ids(coop_ids),
        "custom.requested",
        _l("新的定制需求：%(title)s", title=request.title),
        _l(
            "%(unit)s 需要 %(quantity)d 份，%(needed_by)s 前交货，请报价。",
            unit=db.session.get(Unit, request.unit_id).name,  # `request` may be pending
            quantity=request.quantity,
            needed_by=request.needed_by.isoformat(),
        ),
        recipients.link_to("procurement.coop_custom"),
    )


def _paired_unit_ids(coop: Coop) -> set[int]:
    day = today()
    return set(
        db.session.scalars(
            select(Pairing.unit_id).where(
                Pairing.village_id == coop.village_id,
                Pairing.since <= day,
                or_(Pairing.until.is_(None), Pairing.until >= day),
            )
        )
    )


def visible_to_coop(request: CustomRequest, coop: Coop) -> bool:
    return request.open_to_all or request.unit_id in _paired_unit_ids(coop)


def requests_for_coops(user: User) -> list[tuple[CustomRequest, Coop]]:
    """Open requests a co-op manager may quote on, paired units' first."""
    found = []
    open_requests = db.session.scalars(
        select(CustomRequest)
        .where(CustomRequest.status == RequestStatus.OPEN)
        # The page names each request's unit and whether it is paired with the co-op.
        .options(
            selectinload(CustomRequest.unit).selectinload(Unit.pairings).joinedload(Pairing.village)
        )
        .order_by(CustomRequest.id.desc())
    ).all()
    paired_by_coop = {coop.id: _paired_unit_ids(coop) for coop in user.managed_coops()}
    for coop in user.managed_coops():
        paired = paired_by_coop[coop.id]
        for request in open_requests:
            if request.open_to_all or request.unit_id in paired:
                found.append((request, coop))
    return sorted(found, key=lambda pair: pair[0].unit_id not in paired_by_coop[pair[1].id])


@dataclass
class OpenRequest:
    custom: CustomRequest
    paired: bool
    may_quote: list[Coop]  # the user's co-ops that see it and have not quoted yet
    quoted: list[Quote]


def open_requests_for(user: User) -> list[OpenRequest]:
    """The co-op manager's page: each open request once, with which of their co-ops may still
    quote and the quotes they gave; requests of units paired with one of them first."""
    day = today()
    mine = {coop.id for coop in user.managed_coops()}
    own_quotes = {
        (quote.request_id, quote.coop_id): quote
        for quote in db.session.scalars(select(Quote).where(Quote.coop_id.in_(mine)))
    }
    grouped: dict[int, OpenRequest] = {}
    for custom, coop in requests_for_coops(user):
        entry = grouped.get(custom.id)
        if entry is None:
            entry = grouped[custom.id] = OpenRequest(custom, False, [], [])
        paired_villages = {village.id for village in custom.unit.current_villages(day)}
        entry.paired = entry.paired or coop.village_id in paired_villages
        quote = own_quotes.get((custom.id, coop.id))
        if quote is None:
            entry.may_quote.append(coop)
        else:
            entry.quoted.append(quote)
    return sorted(grouped.values(), key=lambda entry: not entry.paired)


def decided_quotes(user: User, limit: int = 50) -> list[Quote]:
    """The latest quotes of the user's co-ops that a unit has accepted or declined."""
    mine = [coop.id for coop in user.managed_coops()]
    return list(
        db.session.scalars(
            select(Quote)
            .where(Quote.coop_id.in_(mine), Quote.status != QuoteStatus.SUBMITTED)
            .order_by(Quote.id.desc())
            .limit(limit)
        )
    )


def request_for_unit(user: User, request_id: int, *, for_update: bool = False) -> CustomRequest:
    request = db.session.get(
        CustomRequest,
        request_id,
        with_for_update=for_update,
        populate_existing=for_update,
        # Its page lists the quotes with their co-ops and villages.
        options=()
        if for_update
        else (
            selectinload(CustomRequest.quotes)
            .joinedload(Quote.coop)
            .joinedload(Coop.village)
            .joinedload(Village.town),
        ),
    )
    unit = user.unit
    if request is None or not (
        user.is_admin or user.is_organizer or (unit is not None and unit.id == request.unit_id)
    ):
        raise NotFound(_("找不到该定制需求"))
    return request


@unit_of_work
def open_to_all(coordinator: User, request_id: int) -> CustomRequest:
    _membership(coordinator, UnitRole.COORDINATOR)
    request = request_for_unit(coordinator, request_id, for_update=True)
    if request.status != RequestStatus.OPEN:
        raise DomainError(_("该需求已结束"))
    if not request.open_to_all:
        paired = recipients.paired_coop_ids(request.unit_id)
        _tell_coops_of_request(request, recipients.all_coop_ids() - paired)
    request.open_to_all = True
    db.session.commit()
    return request


@dataclass(frozen=True)
class QuoteData:
    unit_price_fen: int
    lead_time_days: int
    note: str


@unit_of_work
def submit_quote(
    user: User, request_id: int, coop_id: int, data: QuoteData, sample: FileStorage | None = None
) -> Quote:
    """A co-op quotes once per request, only on requests it may see, only while open."""
    coop = db.session.get(Coop, coop_id)
    if coop is None or (not user.is_admin and coop.id not in {c.id for c in user.managed_coops()}):
        raise NotAllowed(_("这不是您管理的合作社"))
    request = db.session.get(CustomRequest, request_id)
    if request is None or not visible_to_coop(request, coop):
        raise NotFound(_("找不到该定制需求"))
    if request.status != RequestStatus.OPEN:
        raise DomainError(_("该需求已结束，不能再报价"))
    if data.unit_price_fen <= 0:
        raise DomainError(_("单价必须大于 0"), field="unit_price")
    if not 1 <= data.lead_time_days <= 365:
        raise DomainError(_("交货天数应在 1 到 365 之间"), field="lead_time_days")
    existing = db.session.scalar(
        select(Quote).where(Quote.request_id == request.id, Quote.coop_id == coop.id)
    )
    if existing is not None:
        raise Conflict(_("本合作社已报过价"))
    quote = Quote(
        request_id=request.id,
        coop_id=coop.id,
        created_by_id=user.id,
        unit_price_fen=data.unit_price_fen,
        lead_time_days=data.lead_time_days,
        note=data.note.strip()[:500],
    )
    if sample is not None and sample.filename:
        quote.sample_photo_path = store_image(sample, "quotes").path
    db.session.add(quote)
    notify(
        recipients.unit_coordinator_ids(request.unit_id),
        "custom.quoted",
        _l("“%(title)s”收到报价", title=request.title),
        _l(
            "%(coop)s 报价单价 %(price)s，%(days)d 天交货。",
            coop=coop.name,
            price=format_fen(quote.unit_price_fen),
            days=quote.lead_time_days,
        ),
        recipients.link_to("procurement.custom_request", request_id=request.id),
    )
    db.session.commit()
    return quote


@unit_of_work
def accept_quote(coordinator: User, request_id: int, quote_id: int) -> Order:
    """The unit accepts one quote; the others are declined; an order (mode custom) at the
    quoted price follows. Two acceptances at once accept one."""
    _membership(coordinator, UnitRole.COORDINATOR)
    request = request_for_unit(coordinator, request_id)
    quote = db.session.get(Quote, quote_id)
    if quote is None or quote.request_id != request.id:
        raise NotFound(_("找不到该报价"))
    claimed = db.session.execute(
        update(CustomRequest)
        .where(CustomRequest.id == request.id, CustomRequest.may_become(RequestStatus.ACCEPTED))
        .values(status=RequestStatus.ACCEPTED)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise Conflict(_("该需求已选定报价"))
    request = db.session.get(CustomRequest, request.id, populate_existing=True)
    for other in request.quotes:
        other.move_to(QuoteStatus.ACCEPTED if other.id == quote.id else QuoteStatus.DECLINED)
    # The agreed product, hidden from the storefront, carries the order like any other.
    product = Product(
        coop_id=quote.coop_id,
        category_id=_custom_category_id(),
        name=_("定制：%(title)s", title=request.title)[:80],
        description=request.description,
        status=ProductStatus.DELISTED,
    )
    product.skus.append(
        Sku(
            spec=_("定制款")[:60],
            price_fen=quote.unit_price_fen,
            stock=request.quantity,
        )
    )
    db.session.add(product)
    db.session.flush()
    quote.product_id = product.id
    unit = request.unit
    order = orders.build_order(
        request.created_by,
        [orders.WantedLine(product.skus[0].id, request.quantity)],
        orders.Delivery(
            DeliveryMethod.DELIVERY,
            request.recipient or request.created_by.name,
            request.phone or request.created_by.phone or unit.contact_phone or "-",
            request.address or unit.address or unit.name,
        ),
        f"custom-{request.id}-{uuid.uuid4().hex[:8]}",
        mode=OrderMode.CUSTOM,
        unit_id=request.unit_id,
        expires=False,
        allow_unlisted=True,
    )
    request.order_id = order.id
    for other in request.quotes:
        won = other.id == quote.id
        notify(
            recipients.coop_manager_ids([other.coop_id]),
            "custom.accepted" if won else "custom.declined",
            _l("您的报价已被选中：%(title)s", title=request.title)
            if won
            else _l("您的报价未被选中：%(title)s", title=request.title),
            _l("已生成订单 %(number)s，请备货。", number=order.number)
            if won
            else _l("%(unit)s 已选定其他合作社的报价，谢谢参与。", unit=unit.name),
            recipients.link_to("orders.coop_inbox" if won else "procurement.coop_custom"),
        )
    db.session.commit()
    return order


def _custom_category_id() -> int:
    from market.catalog.models import Category

    category = db.session.scalar(select(Category).where(Category.slug == "custom"))
    if category is None:
        category = Category(name=_("定制")[:30], slug="custom", sort_order=99)
        db.session.add(category)
        db.session.flush()
    return category.id


def unit_requests(unit_id: int) -> list[CustomRequest]:
    return list(
        db.session.scalars(
            select(CustomRequest)
            .where(CustomRequest.unit_id == unit_id)
            .options(selectinload(CustomRequest.quotes))  # the list counts them
            .order_by(CustomRequest.id.desc())
        )
    )
