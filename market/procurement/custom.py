"""产品定制: a unit asks for a custom product; co-ops of its paired villages see the request first,
all co-ops once the unit opens it; co-ops quote; the unit accepts exactly one quote and an order
at the quoted price follows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from market.accounts.models import UnitRole, User
from market.catalog.models import Product, ProductStatus, Sku
from market.clock import today
from market.directory.models import Coop, Pairing, Unit, Village
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderMode
from market.procurement.models import CustomRequest, Quote, QuoteStatus, RequestStatus
from market.procurement.roles import unit_membership
from market.transactions import unit_of_work
from market.uploads import store_image


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
    membership = unit_membership(coordinator, UnitRole.COORDINATOR)
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
    unit_membership(coordinator, UnitRole.COORDINATOR)
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
    unit_membership(coordinator, UnitRole.COORDINATOR)
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
