"""A query budget on every page (issue 13, point 6), and GET never writes (issue 14, point 5):
every GET route of the URL map, requested by each role that may use it, on the demo data at two
sizes (x1, and x5 the products, orders, users, group-buys, purchases...), makes the same number
of SQL statements at both sizes and at most BUDGET, and runs no INSERT, UPDATE or DELETE (but
the session's once-a-minute `last_seen_at` touch). A page whose count grows with the data has an
N+1 (a lazy load per row); a page that writes changes the shop when a crawler, a prefetching
browser or a reload asks for it.

Each size is built once for the module (seed-demo, then the shop's activity through the real
services), every page is requested once per role at each size, and the tests compare the two
counts. The storefront cache is emptied before each request, so the count is the real render's.
"""

from __future__ import annotations

import io
import itertools
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, update
from werkzeug.datastructures import FileStorage
from werkzeug.routing import AnyConverter

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    PasswordReset,
    ResetChannel,
    UnitMembership,
    UnitRole,
    User,
)
from market.catalog.models import Category, Product, ProductImage, ProductStatus, Sku
from market.demo import (
    DEMO_COOP_NAME,
    DEMO_PASSWORD,
    DEMO_UNIT_NAME,
    default_data_dir,
    seed_demo,
)
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.extensions import db
from market.models import utcnow
from market.security.throttle import limiter
from tests import factories
from tests.conftest import _empty_all_tables

BUDGET = 15
SIZES = (1, 5)

# Who asks for a page, by the access its view declares (a view open to several asks as each).
ROLE_OF_ACCESS = {
    "public": "anonymous",
    "signed_in": "buyer",
    "employee": "employee",
    "coordinator": "coordinator",
    "approver": "approver",
    "coop_manager": "coop",
    "organizer": "organizer",
    "finance": "finance",
    "admin": "admin",
}
# Pages whose signed-in visitor is someone else than the plain buyer (the one who has them).
ROLES_OF_ENDPOINT = {
    "orders.cart": ("anonymous", "buyer"),
    "catalog.home": ("anonymous", "buyer"),
    "catalog.product": ("anonymous", "buyer"),
    "groupbuy.index": ("employee",),
    "groupbuy.detail": ("employee",),
    "api_groupbuys.group_buy": ("employee",),
    "accounts.account": ("buyer", "coordinator"),
}
# Not requested: what they answer is no page, and reaching them needs another server.
NOT_WALKED = {
    "static": "the app's own files",
    "payments.method/stripe": "the card page asks Stripe (localstripe) for the intent",
}


# -- the demo world at one size -------------------------------------------------------------------
def pdf_upload(name: str = "file.pdf") -> FileStorage:
    data = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    return FileStorage(io.BytesIO(data), filename=name, content_type="application/pdf")


def image_upload(name: str = "slip.png") -> FileStorage:
    return FileStorage(
        io.BytesIO(factories.image_bytes("PNG")), filename=name, content_type="image/png"
    )


@dataclass
class Builder:
    """Grows the demo world by a factor `k` through the real services, each call in a request
    context of its own (as a view would run it). Keeps the ids the pages are asked for."""

    app: Flask
    k: int
    ids: dict[str, Any] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)
    _serial: Iterator[int] = field(default_factory=itertools.count)

    @contextmanager
    def ctx(self) -> Iterator[None]:
        with self.app.test_request_context():
            try:
                yield
            except Exception:
                db.session.rollback()
                raise

    def user(self, role_or_id: str | int) -> User:
        user_id = self.people[role_or_id] if isinstance(role_or_id, str) else role_or_id
        return db.session.get(User, user_id)

    def n(self) -> int:
        return next(self._serial)

    # -- the parts ---------------------------------------------------------------------------
    def build(self) -> None:
        with self.ctx():
            assert seed_demo(default_data_dir()) is True
            self.people = {
                email.split("@")[0]: user_id
                for email, user_id in db.session.execute(select(User.email, User.id))
                if email
            }
            self.ids["unit"] = db.session.scalar(select(Unit.id).where(Unit.name == DEMO_UNIT_NAME))
            self.ids["coop"] = db.session.scalar(select(Coop.id).where(Coop.name == DEMO_COOP_NAME))
        self.grow_directory()
        self.grow_catalog()
        self.product_picture()
        self.grow_people()
        self.batches()  # before the orders: their lines ship from these batches
        self.retail_orders()
        self.group_buys()
        self.unit_purchases()
        self.custom_requests()
        self.statements()
        self.cart()
        self.certificates()
        self.presales()
        self.exports()
        self.collect_ids()

    def grow_directory(self) -> None:
        """2k more villages in a town of their own, each with an approved co-op (and its
        manager) and a unit paired with it."""
        with self.ctx():
            town = Town(name=f"示例镇{self.k}")
            db.session.add(town)
            managers = []
            for i in range(2 * self.k):
                village = Village(town=town, name=f"示例新村{i:02d}", story="示例数据：演示用。")
                coop = Coop(village=village, name=f"示例新村{i:02d}合作社", approved=True)
                unit = Unit(name=f"示例新单位{i:03d}")
                db.session.add_all([village, coop, unit])
                db.session.add(Pairing(unit=unit, village=village, since=date(2024, 9, 3)))
                manager = factories.make_user(f"示例社长{i}", f"manager{i}@example.com")
                db.session.add(CoopMembership(user=manager, coop=coop, role=CoopRole.MANAGER))
                managers.append(manager)
            # 古丁村's fish farm gets a manager too: orders of both co-ops ship twice.
            farm = db.session.scalar(
                select(Coop).where(
                    Coop.village_id == self._coop().village_id, Coop.id != self.ids["coop"]
                )
            )
            farm_manager = factories.make_user("塘鱼场长", "farm@example.com")
            db.session.add(CoopMembership(user=farm_manager, coop=farm, role=CoopRole.MANAGER))
            db.session.commit()
            self.ids["farm"] = farm.id
            self.people["farm"] = farm_manager.id
            self.ids["new_coops"] = [m.coop_memberships[0].coop_id for m in managers]
            self.people.update({f"manager{i}": m.id for i, m in enumerate(managers)})

    def _coop(self) -> Coop:
        return db.session.get(Coop, self.ids["coop"])

    def grow_catalog(self) -> None:
        """The listed products k times over (copies with their SKUs), two images each, and a
        draft and a delisted product of the demo co-op."""
        with self.ctx():
            listed = db.session.scalars(
                select(Product).where(Product.status == ProductStatus.LISTED).order_by(Product.id)
            ).all()
            copies = []
            for copy in range(1, self.k):
                for product in listed:
                    clone = Product(
                        coop_id=product.coop_id,
                        category_id=product.category_id,
                        name=f"{product.name}（{copy + 1}号）",
                        description=product.description,
                        origin_story=product.origin_story,
                        season_mask=product.season_mask,
                        status=ProductStatus.LISTED,
                        featured=product.featured,
                    )
                    clone.skus = [
                        Sku(spec=s.spec, price_fen=s.price_fen, stock=s.stock, weight_g=s.weight_g)
                        for s in product.skus
                    ]
                    copies.append(clone)
            db.session.add_all(copies)
            for coop_id in self.ids["new_coops"]:
                for category in db.session.scalars(select(Category).limit(self.k)):
                    factories.make_product(
                        db.session.get(Coop, coop_id), category, f"新村{category.name}"
                    )
            for status in (ProductStatus.DRAFT, ProductStatus.DELISTED):
                factories.make_product(
                    self._coop(),
                    db.session.scalar(select(Category)),
                    f"示例{status.value}",
                    status=status,
                )
            db.session.flush()
            for product in db.session.scalars(select(Product)):
                for position in range(2):
                    db.session.add(
                        ProductImage(
                            product_id=product.id,
                            path=f"products/{product.id}-{position}.jpg",
                            thumb_path=f"products/{product.id}-{position}-thumb.jpg",
                            width=800,
                            height=600,
                            position=position,
                        )
                    )
            # The demo co-op's products have a second SKU.
            for product in self.products_of(self.ids["coop"]):
                product.skus.append(Sku(spec="礼盒装", price_fen=12800, stock=300, weight_g=2000))
            db.session.commit()

    def product_picture(self) -> None:
        """The demo co-op's manager uploads a photo of its first listed product (stored and
        thumbnailed by the real upload service): /media serves that file."""
        from market.catalog import services as catalog

        with self.ctx():
            product = next(
                p for p in self.products_of(self.ids["coop"]) if p.status == ProductStatus.LISTED
            )
            data = catalog.ProductData(
                name=product.name,
                category_id=product.category_id,
                description=product.description,
                origin_story=product.origin_story,
                season_mask=product.season_mask,
                shelf_life_days=product.shelf_life_days,
            )
            photo = FileStorage(io.BytesIO(factories.image_bytes("JPEG")), filename="photo.jpg")
            product = catalog.update_product(self.user("coop"), product.id, data, [photo])
            self.ids["picture"] = max(product.images, key=lambda i: i.position).thumb_path

    def grow_people(self) -> None:
        """6k confirmed members of the demo unit, k waiting for the coordinator, k phone-only
        people asking the organizer for a password reset, a reset link for the buyer."""
        with self.ctx():
            unit = db.session.get(Unit, self.ids["unit"])
            members = []
            for _ in range(6 * self.k):
                n = self.n()
                user = factories.make_user(f"职工{n}", f"member{n}@example.com", f"1370000{n:04d}")
                factories.add_unit_member(user, unit, UnitRole.MEMBER)
                members.append(user.id)
            for _ in range(self.k):
                n = self.n()
                user = factories.make_user(f"新职工{n}", f"new{n}@example.com")
                db.session.add(
                    UnitMembership(
                        user=user, unit=unit, role=UnitRole.MEMBER, status=MembershipStatus.PENDING
                    )
                )
                phone_only = factories.make_user(f"忘密码{n}", None, f"1360000{n:04d}")
                db.session.add(
                    PasswordReset(
                        user_id=phone_only.id, channel=ResetChannel.ORGANIZER, created_at=utcnow()
                    )
                )
            db.session.commit()
            self.ids["members"] = members
            self.ids["reset_token"] = self._reset_link(self.people["buyer"])

    @staticmethod
    def _reset_link(user_id: int) -> str:
        from market.accounts import recovery

        nonce = secrets.token_urlsafe(24)
        reset = PasswordReset(
            user_id=user_id,
            channel=ResetChannel.MAIL,
            created_at=utcnow(),
            secret_hash=recovery._hash(nonce),
            expires_at=utcnow() + timedelta(hours=1),
        )
        db.session.add(reset)
        db.session.commit()
        return recovery._serializer().dumps({"r": reset.id, "n": nonce})

    @staticmethod
    def products_of(coop_id: int) -> list[Product]:
        return list(
            db.session.scalars(
                select(Product).where(Product.coop_id == coop_id).order_by(Product.id)
            )
        )

    def skus_of(self, coop_id: int, count: int) -> list[int]:
        return list(
            db.session.scalars(
                select(Sku.id)
                .join(Product)
                .where(Product.coop_id == coop_id, Product.status == ProductStatus.LISTED)
                .order_by(Sku.id)
                .limit(count)
            )
        )

    def retail_orders(self) -> None:
        """3k orders of the buyer (k lines of the demo co-op, one of the fish farm: two
        parcels each), paid by transfer (with a slip) but the last; all paid ones shipped,
        the first ones received; a line refunded on one (owed), on another sent."""
        from market.orders import lifecycle
        from market.orders import services as orders
        from market.orders.models import DeliveryMethod, Order
        from market.payments import refunds, transfers
        from market.payments import services as payments

        numbers = []
        with self.ctx():
            skus = self.skus_of(self.ids["coop"], self.k) + self.skus_of(self.ids["farm"], 1)
        for i in range(3 * self.k):
            with self.ctx():
                delivery = orders.Delivery(
                    DeliveryMethod.DELIVERY,
                    "赵买家",
                    "13800000007",
                    "广东省茂名市高州市人民路 1 号",
                )
                wanted = [orders.WantedLine(sku, 1) for sku in skus]
                order = orders.build_order(
                    self.user("buyer"), wanted, delivery, secrets.token_hex(16)
                )
                db.session.commit()
                numbers.append(order.number)
            with self.ctx():
                payments.start_payment(self.user("buyer"), numbers[-1], "offline")
            if i == 3 * self.k - 1:
                break  # left to pay
            with self.ctx():
                transfers.confirm_transfer(
                    self.user("finance"),
                    numbers[-1],
                    f"BANK-{self.n():06d}",
                    date.today(),
                    image_upload(),
                )
            with self.ctx():
                order = db.session.scalar(select(Order).where(Order.number == numbers[-1]))
                shipments = [(s.id, s.coop_id) for s in order.shipments]
            for shipment_id, coop_id in shipments:
                manager = "coop" if coop_id == self.ids["coop"] else "farm"
                with self.ctx():
                    lifecycle.ship(self.user(manager), shipment_id, "顺丰", f"SF{self.n()}")
                if i < 2 * self.k:
                    with self.ctx():
                        lifecycle.confirm_delivery(self.user("buyer"), numbers[-1], shipment_id)
        with self.ctx():
            paid = [db.session.scalar(select(Order).where(Order.number == n)) for n in numbers[:2]]
            line_ids = [order.lines[0].id for order in paid]
        refund_ids = []
        for line_id in line_ids:
            with self.ctx():
                refund_ids.append(refunds.refund_line(self.user("coop"), line_id, 100, "破损").id)
        with self.ctx():
            transfers.send_refund(
                self.user("finance"),
                refund_ids[0],
                f"REF-{self.n():06d}",
                date.today(),
                image_upload(),
            )
        with self.ctx():
            from market.payments.models import Payment

            order = db.session.scalar(select(Order).where(Order.number == numbers[-2]))
            self.ids["order"] = order.number
            self.ids["shipment_id"] = next(
                s.id for s in order.shipments if s.coop_id == self.ids["coop"]
            )
            self.ids["unpaid"] = numbers[-1]
            self.ids["payment_id"] = db.session.scalar(
                select(func.max(Payment.id)).where(Payment.proof_path.is_not(None))
            )
            self.ids["refund_id"] = refund_ids[0]
        self.ids["orders"] = numbers

    def group_buys(self) -> None:
        """k closed group-buys of two members each and one of 2k members (shipped, arrived,
        half picked up: cash with the coordinator), and one open with 2k members, the
        employee among them."""
        from market.groupbuy import closing, fulfilment, joining, proposals
        from market.groupbuy.models import PaymentMode, Visibility
        from market.groupbuy.proposals import GroupBuyData, ItemData, TierData

        members = self.ids["members"]

        def open_one(closes_in: timedelta) -> tuple[int, list[int], datetime]:
            with self.ctx():
                now = utcnow()
                skus = self.skus_of(self.ids["coop"], self.k + 1)
                data = GroupBuyData(
                    title=f"消费帮扶 · 团购{self.n()}",
                    opens_at=now - timedelta(minutes=1),
                    closes_at=now + closes_in,
                    min_quantity=1,
                    payment_mode=PaymentMode.PICKUP,
                    visibility=Visibility.MEMBERS,
                    pickup_address="市场监管局一楼大厅",
                    pickup_contact="王联络 13800000003",
                    pickup_window="周五 12:00-14:00",
                    items=[ItemData(sku, 8000, None, [TierData(5, 7000)]) for sku in skus],
                )
                group_buy = proposals.open_group_buy(self.user("coordinator"), data)
                gb_id, items, closes_at = (
                    group_buy.id,
                    [i.id for i in group_buy.items],
                    data.closes_at,
                )
            with self.ctx():
                proposals.accept_group_buy(self.user("coop"), gb_id)
            return gb_id, items, closes_at

        def join(gb_id: int, items: list[int], user_ids: list[int]) -> None:
            for user_id in user_ids:
                with self.ctx():
                    joining.join(self.user(user_id), gb_id, {item: 1 for item in items})

        closed = []
        for size in [2] * self.k + [2 * self.k]:
            gb_id, items, closes_at = open_one(timedelta(hours=2))
            join(gb_id, items, members[:size])
            with self.ctx():
                closing.close_group_buy(gb_id, closes_at + timedelta(seconds=1))
            closed.append(gb_id)
        big = closed[-1]
        with self.ctx():
            fulfilment.ship_consolidated(self.user("coop"), big, "顺丰速运", "SF1")
        with self.ctx():
            fulfilment.mark_arrived(self.user("coordinator"), big)
        with self.ctx():
            from market.groupbuy.models import GroupBuy

            participations = [p.id for p in db.session.get(GroupBuy, big).participations]
        for participation_id in participations[: len(participations) // 2]:
            with self.ctx():
                fulfilment.mark_picked_up(self.user("coordinator"), big, participation_id)
        gb_id, items, _ = open_one(timedelta(days=3))
        join(gb_id, items, [self.people["employee"], *members[: 2 * self.k - 1]])
        self.ids["closed_group_buy"] = big
        self.ids["open_group_buy"] = gb_id

    def unit_purchases(self) -> None:
        """k approved purchases of k lines over two co-ops (two orders each, on credit; the
        first one's orders shipped, an invoice asked for and issued with a file), one submitted,
        one draft."""
        from market.orders import invoices, lifecycle
        from market.procurement import purchases
        from market.procurement.models import Purpose

        def draft() -> int:
            with self.ctx():
                lines = self.skus_of(self.ids["coop"], self.k) + self.skus_of(self.ids["farm"], 1)
                data = purchases.PurchaseData(
                    purpose=Purpose.CANTEEN,
                    purpose_note="机关食堂",
                    recipient="王联络",
                    phone="13800000003",
                    address="高州市府前路 1 号 机关食堂",
                    invoice_title=DEMO_UNIT_NAME,
                    invoice_tax_id="11440981MB2C12345X",
                    pay_online=False,
                    lines={sku: 2 for sku in lines},
                )
                return purchases.draft_purchase(self.user("coordinator"), data).id

        approved = []
        for _ in range(self.k):
            purchase_id = draft()
            with self.ctx():
                purchases.submit_purchase(self.user("coordinator"), purchase_id)
            with self.ctx():
                purchase = purchases.approve_purchase(self.user("approver"), purchase_id)
                approved.append((purchase_id, [o.id for o in purchase.orders]))
        submitted = draft()
        with self.ctx():
            purchases.submit_purchase(self.user("coordinator"), submitted)
        self.ids["draft_purchase"] = draft()
        purchase_id, order_ids = approved[-1]
        from market.orders.models import Order

        for order_id in order_ids:
            with self.ctx():
                order = db.session.get(Order, order_id)
                for shipment in order.shipments:
                    manager = "coop" if shipment.coop_id == self.ids["coop"] else "farm"
                    lifecycle.ship(self.user(manager), shipment.id, "顺丰", f"SF{self.n()}")
                    break
        with self.ctx():
            order = db.session.get(Order, order_ids[0])
            number = order.number
            invoice = invoices.request_invoice(
                self.user("coordinator"),
                number,
                DEMO_UNIT_NAME,
                "11440981MB2C12345X",
                "府前路 1 号",
            )
            invoice_id = invoice.id
        with self.ctx():
            invoices.issue_invoice(self.user("finance"), invoice_id, "INV-0001", pdf_upload())
        self.ids["purchase"] = purchase_id
        self.ids["purchase_order_id"] = order_ids[0]
        self.ids["purchase_order"] = number
        self.ids["invoice_id"] = invoice_id

    def custom_requests(self) -> None:
        """k + 1 custom requests open to every co-op, each quoted by k co-ops; the first's quote
        accepted."""
        from market.procurement import custom

        request_ids = []
        for _ in range(self.k + 1):
            with self.ctx():
                request = custom.create_request(
                    self.user("coordinator"),
                    custom.RequestData(
                        title=f"定制礼盒{self.n()}",
                        description="蜂蜜加藿香",
                        quantity=50,
                        budget_fen=20000,
                        needed_by=date.today() + timedelta(days=30),
                        card_text="",
                        packaging="礼盒",
                    ),
                )
                request_ids.append(request.id)
            with self.ctx():
                custom.open_to_all(self.user("coordinator"), request_ids[-1])
            quoters = [("coop", self.ids["coop"])] + [
                (f"manager{i}", coop_id)
                for i, coop_id in enumerate(self.ids["new_coops"][: self.k - 1])
            ]
            for manager, coop_id in quoters:
                with self.ctx():
                    custom.submit_quote(
                        self.user(manager),
                        request_ids[-1],
                        coop_id,
                        custom.QuoteData(9000 + self.n(), 10, "可加印单位标志"),
                    )
        with self.ctx():
            from market.procurement.models import CustomRequest

            first = db.session.get(CustomRequest, request_ids[0])
            quote_id = first.quotes[0].id
        with self.ctx():
            custom.accept_quote(self.user("coordinator"), request_ids[0], quote_id)
        self.ids["custom_request"] = request_ids[-1]

    def statements(self) -> None:
        """The received parcels are due: statements for every co-op with sales, the demo
        co-op's confirmed and paid out (with a proof)."""
        from market.settlements import services as settlements
        from market.settlements.services import SHANGHAI

        with self.ctx():
            for table_name, column_name in (
                ("settlement_entries", "at"),
                ("shipments", "shipped_at"),
                ("shipments", "delivered_at"),
                ("payments", "cash_handed_over_at"),
            ):
                table = db.metadata.tables[table_name]
                column = table.c[column_name]
                self._backdate(table, column)
            db.session.commit()
        today = datetime.now(SHANGHAI).date()
        with self.ctx():
            issued = settlements.issue_statements(today, self.user("finance"))
            mine = next(s.id for s in issued if s.coop_id == self.ids["coop"])
        with self.ctx():
            settlements.confirm_statement(self.user("coop"), mine)
        with self.ctx():
            settlements.record_payout(
                self.user("finance"), mine, f"PAY-{self.n():06d}", today, image_upload("proof.png")
            )
        self.ids["statement"] = mine

    @staticmethod
    def _backdate(table, column) -> None:
        for row_id, value in db.session.execute(
            select(table.c.id, column).where(column.is_not(None))
        ).all():
            db.session.execute(
                update(table)
                .where(table.c.id == row_id)
                .values({column.name: value - timedelta(days=30)})
            )

    def cart(self) -> None:
        """The buyer's cart holds k products of two co-ops."""
        from market.orders import carts

        with self.ctx():
            skus = self.skus_of(self.ids["coop"], self.k) + self.skus_of(self.ids["farm"], 1)
        for sku in skus:
            with self.ctx():
                carts.add_to_cart(self.user("buyer"), None, sku, 1)
                db.session.commit()

    def certificates(self) -> None:
        """The demo co-op uploads k certificates naming k products each (waiting in the
        organizers' queue) and the organizer verifies k of them: badges on k products more."""
        from market.certificates import services as certificates

        with self.ctx():
            product_ids = [p.id for p in self.products_of(self.ids["coop"])][: self.k]
        uploaded = []
        for _ in range(2 * self.k):
            with self.ctx():
                data = certificates.CertificateData(
                    coop_id=self.ids["coop"],
                    kind="organic",
                    number=f"OG-{self.n():06d}",
                    issuer="示例认证中心",
                    valid_until=date.today() + timedelta(days=365),
                    product_ids=product_ids,
                )
                uploaded.append(
                    certificates.upload_certificate(self.user("coop"), data, pdf_upload()).id
                )
        for certificate_id in uploaded[: self.k]:
            with self.ctx():
                certificates.verify_certificate(self.user("organizer"), certificate_id)
        self.ids["certificate_id"] = uploaded[-1]

    def presales(self) -> None:
        """The demo co-op opens a presale of its first SKU; the buyer reserves 1 unit k times
        (the co-op's queue grows with k; each reservation an order awaiting the harvest)."""
        from market.presales import services as presales

        with self.ctx():
            [sku_id] = self.skus_of(self.ids["coop"], 1)
            start = date.today() + timedelta(days=60)
            presale = presales.open_presale(
                self.user("coop"),
                sku_id=sku_id,
                harvest_from=start,
                harvest_to=start + timedelta(days=20),
                price_fen=5000,
                limit_quantity=10 * self.k,
            )
            self.ids["presale_id"] = presale.id
        for _ in range(self.k):
            with self.ctx():
                presales.reserve(
                    self.user("buyer"),
                    self.ids["presale_id"],
                    1,
                    rollover_wanted=False,
                    for_unit=False,
                    delivery={
                        "method": "delivery",
                        "address_id": None,
                        "recipient": "赵买家",
                        "phone": "13800000007",
                        "region": "广东省茂名市高州市",
                        "detail": "人民路 1 号",
                        "note": "",
                    },
                    idempotency_key=secrets.token_hex(16),
                )

    def batches(self) -> None:
        """The demo co-op records a batch for each of the k SKUs the retail orders buy."""
        from market.batches import services as batches

        with self.ctx():
            skus = self.skus_of(self.ids["coop"], self.k)
        for sku_id in skus:
            with self.ctx():
                batches.record_batch(
                    self.user("coop"),
                    sku_id,
                    harvested_on=date.today() - timedelta(days=1),
                    plot=f"示例地块{self.n()}",
                    quantity=5,
                    report=pdf_upload(),
                )

    def exports(self) -> None:
        """The organizer asks for each background export of the campaign (issue 13, point 5),
        as on the dashboard; the last job's pages are measured."""
        if "exports.start" not in self.app.view_functions:
            return
        from market.campaign.models import Campaign

        with self.ctx():
            campaign_id = db.session.scalar(select(func.max(Campaign.id)))
        organizer = factories.signed_in_client(self.app, self.people["organizer"], DEMO_PASSWORD)
        from market.exports.models import ExportKind

        for kind in ExportKind:
            response = organizer.post(f"/admin/campaigns/{campaign_id}/exports/{kind}")
            found = re.search(r"/exports/(\d+)", response.headers.get("Location", ""))
            assert found, (kind, response.status_code)
            self.ids["job_id"] = int(found.group(1))
            # Built before the answer (tests run the task eagerly): a job that did not finish
            # says why here, rather than as a 404 of its download in the walk.
            status = organizer.get(f"/exports/{self.ids['job_id']}/status").get_json()
            assert status["status"] == "done", (kind, status)

    def collect_ids(self) -> None:
        from market.campaign.models import Campaign
        from market.catalog.models import SearchSynonym

        with self.ctx():
            unit = db.session.get(Unit, self.ids["unit"])
            coop = self._coop()
            product = max(
                self.products_of(coop.id),
                key=lambda p: (p.status == ProductStatus.LISTED, len(p.skus)),
            )
            # The demo honey's batch (market/demo/batches.py: with a report), shipped from by
            # the retail orders above.
            from market.batches.models import Batch
            from market.catalog.models import Sku

            honey = db.session.scalar(
                select(Batch)
                .join(Sku, Sku.id == Batch.sku_id)
                .where(Sku.product_id.in_([p.id for p in self.products_of(coop.id)]))
                .where(Batch.inspection_path.is_not(None))
            )
            self.ids["batch_id"], self.ids["batch_code"] = honey.id, honey.code
            self.args = {
                "campaign_id": db.session.scalar(select(func.max(Campaign.id))),
                "category_id": db.session.scalar(select(func.min(Category.id))),
                "coop_id": coop.id,
                "pairing_id": db.session.scalar(select(func.min(Pairing.id))),
                "group_id": db.session.scalar(select(func.min(SearchSynonym.id))),
                "town_id": db.session.scalar(select(func.min(Town.id))),
                "unit_id": unit.id,
                "user_id": self.people["coordinator"],
                "village_id": coop.village_id,
                "product_id": product.id,
                "slug": "honey",
                "code": unit.referral_code,
                "token": self.ids["reset_token"],
                "number": self.ids["order"],
                "shipment_id": self.ids["shipment_id"],
                "statement_id": self.ids["statement"],
                "request_id": self.ids["custom_request"],
                "purchase_id": self.ids["purchase"],
                "order_id": self.ids["purchase_order_id"],
                "invoice_id": self.ids["invoice_id"],
                "payment_id": self.ids["payment_id"],
                "refund_id": self.ids["refund_id"],
                "filename": self.ids["picture"],
                "certificate_id": self.ids["certificate_id"],
                "batch_id": self.ids["batch_id"],
                "presale_id": self.ids["presale_id"],
                **{name: self.ids[name] for name in ("job_id",) if name in self.ids},
            }


# -- counting -------------------------------------------------------------------------------------
@dataclass
class Counted:
    status: int
    queries: int
    where: str  # the URL asked for
    writes: tuple[str, ...] = ()  # the statements that changed the database (writes_of)


WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|MERGE|TRUNCATE|CREATE|DROP|ALTER)\b", re.I)
# The one write a GET may make: a signed-in request refreshes its session's `last_seen_at` once a
# minute (market/accounts/sessions.py, TOUCH_EVERY), so that an idle session can end. Only that
# column, of one row by its id.
SESSION_TOUCH = re.compile(
    r"UPDATE user_sessions SET last_seen_at=\S+ WHERE user_sessions\.id = \S+", re.I
)


# And one write after a GET, not in it: a referral link's visit is counted by the Celery task
# market.record_referral_visit, queued once the response is built (campaign/views.py); a worker
# runs it in production, the embedded shop (and this walk, eager) at once, in a transaction of
# its own. Only that table, one row.
REFERRAL_VISIT = re.compile(
    r"INSERT INTO referral_visits \(unit_id, at\) VALUES \([^;]+\)( RETURNING [\w.]+)?", re.I
)


def writes_of(statements: list[str]) -> tuple[str, ...]:
    """The statements that changed the database, but the session's `last_seen_at` touch and a
    referral visit counted after the response."""
    flat = (" ".join(statement.split()) for statement in statements)
    return tuple(
        statement
        for statement in flat
        if WRITE.match(statement)
        and not SESSION_TOUCH.fullmatch(statement)
        and not REFERRAL_VISIT.fullmatch(statement)
    )


@contextmanager
def statements_run(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement sent to the app's database meanwhile, by any session or connection."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(_connection, _cursor, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def walked_rules(app: Flask):
    """The GET routes of the URL map the walk requests, each with the roles that ask for it: a
    new route is walked (and, without an object for its URL arguments, reported) by itself."""
    from market.security.access import Access

    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in (rule.methods or ()) or rule.endpoint in NOT_WALKED:
            continue
        access = getattr(app.view_functions[rule.endpoint], "access", frozenset())
        roles = ROLES_OF_ENDPOINT.get(rule.endpoint) or sorted(
            {ROLE_OF_ACCESS[a.value] for a in access if a is not Access.ADMIN} or {"admin"}
        )
        yield rule, roles


def measure(app: Flask, client, path: str, headers: dict[str, str] | None = None) -> Counted:
    """One GET as the client: its status, its SQL statement count and what it wrote."""
    _clear_cache(app)
    with statements_run(app) as statements:
        response = client.get(path, headers=headers or {})
        response.get_data()  # a streamed body is made now
        response.close()
    return Counted(response.status_code, len(statements), path, writes_of(statements))


def args_for(endpoint: str, real: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
    """The URL arguments of an endpoint: the real objects of its page."""
    special = {
        "api_docs.asset": {"filename": "swagger-ui.css"},
        "api_orders.transfer_details": {"number": ids["unpaid"]},
        "groupbuy.detail": {"group_buy_id": ids["open_group_buy"]},
        "api_groupbuys.group_buy": {"group_buy_id": ids["open_group_buy"]},
        "groupbuy.manage": {"group_buy_id": ids["closed_group_buy"]},
        "groupbuy.pickup_list": {"group_buy_id": ids["closed_group_buy"]},
        "groupbuy.packing_list": {"group_buy_id": ids["closed_group_buy"]},
        "payments.pay": {"number": ids["unpaid"]},
        "payments.method": {"number": ids["unpaid"]},
        "procurement.edit_purchase": {"purchase_id": ids["draft_purchase"]},
        "procurement.unit_invoice": {"number": ids["purchase_order"]},
        "procurement.unit_invoice_file": {"number": ids["purchase_order"]},
        "procurement.coop_document": {"number": ids["purchase_order"]},
        "batches.trace": {"code": ids["batch_code"]},
        "batches.report": {"code": ids["batch_code"]},
        "api_trace.batch": {"code": ids["batch_code"]},
    }
    return {**real, **special.get(endpoint, {})}


def walk(app: Flask, builder: Builder) -> dict[tuple[str, str], Counted]:
    """Every GET page by each of its roles: its status, SQL statement count and writes."""
    clients: dict[str, Any] = {}

    def client(role: str):
        if role not in clients:
            clients[role] = (
                app.test_client()
                if role == "anonymous"
                else factories.signed_in_client(app, builder.people[role], DEMO_PASSWORD)
            )
        return clients[role]

    tokens: dict[str, dict[str, str]] = {}

    def api_headers(role: str) -> dict[str, str]:
        """The JSON API (/api/v1) takes no cookie session: a bearer token of the same person."""
        if role == "anonymous":
            return {}
        if role not in tokens:
            from market.api import tokens as api_tokens

            with app.app_context():
                issued = api_tokens.issue(db.session.get(User, builder.people[role]))
            tokens[role] = {"Authorization": f"Bearer {issued.access_token}"}
        return tokens[role]

    results: dict[tuple[str, str], Counted] = {}
    for rule, roles in walked_rules(app):
        for choice in _choices(rule):
            if f"{rule.endpoint}/{choice}" in NOT_WALKED:
                continue
            values = args_for(rule.endpoint, builder.args, builder.ids)
            missing = sorted(set(rule.arguments) - set(values) - {"kind", "provider"})
            if missing:  # a new route: give the builder an object for it
                for role in roles:
                    results[(rule.rule, role)] = Counted(0, 0, f"no value for {missing}")
                continue
            path = _path(rule, values, choice)
            for role in roles:
                # Signing in and the API token are not the page's: made before it is measured.
                c = client(role)
                extra = api_headers(role) if rule.endpoint.startswith("api") else {}
                n = len(results)
                c.environ_base["REMOTE_ADDR"] = f"10.13.{n // 256 % 256}.{n % 256}"
                key = (rule.rule + (f" [{choice}]" if choice else ""), role)
                results[key] = measure(app, c, path, extra)
    return results


def _choices(rule) -> list[str]:
    for converter in rule._converters.values():
        if isinstance(converter, AnyConverter):
            return sorted(converter.items)
    return [""]


def _path(rule, values: dict[str, Any], choice: str) -> str:
    path = rule.rule
    for name, converter in rule._converters.items():
        value = choice if isinstance(converter, AnyConverter) else str(values[name])
        start = path.index("<")
        end = path.index(">", start)
        path = path[:start] + value + path[end + 1 :]
    return path


def _clear_cache(app: Flask) -> None:
    """The storefront cache (issue 13, point 1), when there is one: the real render is measured."""
    from market import extensions

    cache = getattr(extensions, "cache", None)
    if cache is not None:
        with app.app_context():
            cache.clear()


@pytest.fixture(scope="module")
def counts(base_app: Flask) -> dict[int, dict[tuple[str, str], Counted]]:
    """Each page's count at each size, the world built afresh for each size."""
    measured = {}
    base_app.config["WTF_CSRF_ENABLED"] = False
    limiter.init_app(base_app)
    try:
        for k in SIZES:
            builder = Builder(base_app, k)
            builder.build()
            measured[k] = walk(base_app, builder)
            with base_app.app_context():
                _empty_all_tables()
            limiter.reset()
    finally:
        with base_app.app_context():
            db.session.remove()
            _empty_all_tables()
        limiter.reset()
    return measured


def table(counts: dict[int, dict[tuple[str, str], Counted]], keys) -> str:
    x1, x5 = (counts[k] for k in SIZES)
    lines = [f"{'route':70} {'role':12} {'x1':>4} {'x5':>4}  status"]
    for key in keys:
        a, b = x1.get(key), x5.get(key)
        lines.append(
            f"{key[0]:70} {key[1]:12} {a.queries if a else '-':>4} {b.queries if b else '-':>4}"
            f"  {a.status if a else '-'}/{b.status if b else '-'}"
            + (f"  {a.where}" if a and not a.status else "")
        )
    return "\n".join(lines)


def test_every_page_is_answered(counts) -> None:
    """The walk measured real pages: every role was let in and every object found (a route the
    builder has no object for, status 0, was not requested at all)."""
    bad = [
        key for k in SIZES for key, got in counts[k].items() if got.status >= 400 or not got.status
    ]
    assert not bad, "pages not answered:\n" + table(counts, sorted(set(bad)))


def test_every_page_makes_the_same_queries_at_both_sizes(counts) -> None:
    x1, x5 = (counts[k] for k in SIZES)
    assert x1.keys() == x5.keys()
    grows = [key for key in x1 if x1[key].queries != x5[key].queries]
    assert not grows, "query count grows with the data (N+1):\n" + table(counts, grows)


def test_every_page_stays_within_the_budget(counts) -> None:
    over = sorted({key for k in SIZES for key, got in counts[k].items() if got.queries > BUDGET})
    assert not over, f"pages over {BUDGET} queries:\n" + table(counts, over)


# -- GET never writes ------------------------------------------------------------------------------
def test_get_routes_never_change_anything(counts) -> None:
    """GET routes never change anything: while each GET page of the URL map was answered, for
    each of its roles, at both sizes, no INSERT, UPDATE or DELETE ran (but the session's
    `last_seen_at` touch, SESSION_TOUCH)."""
    wrote = {(k, *key): got.writes for k in SIZES for key, got in counts[k].items() if got.writes}
    assert not wrote, "GET pages that wrote:\n" + "\n".join(
        f"x{k} {route} as {role}: {'; '.join(statements)}"
        for (k, route, role), statements in sorted(wrote.items())
    )


@pytest.fixture
def throwaway_app(tmp_path) -> Iterator[Flask]:
    """A shop of its own with two throwaway GET pages that write (the shared app cannot take new
    routes once it has answered a request)."""
    from market import create_app
    from market.security.access import Access, requires

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'throwaway.db'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "CELERY_TASK_ALWAYS_EAGER": True,
            "CACHE_TYPE": "SimpleCache",
        }
    )

    @app.get("/throwaway/new-town")
    @requires(Access.PUBLIC)
    def new_town():
        db.session.add(Town(name="路过镇"))
        db.session.commit()
        return "ok"

    @app.get("/throwaway/end-my-session")
    @requires(Access.SIGNED_IN)
    def end_my_session():
        from market.accounts.models import UserSession

        db.session.execute(update(UserSession).values(ended_at=utcnow()))
        db.session.commit()
        return "ok"

    with app.app_context():
        db.create_all()
        factories.make_user("周买家", "buyer@example.com")
        db.session.commit()
    limiter.init_app(app)
    yield app
    limiter.reset()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_walk_catches_a_new_get_that_writes(throwaway_app: Flask) -> None:
    """The checker can fail: a new GET route is walked by itself, and what it writes is reported,
    while the session's `last_seen_at` touch alone is not."""
    from market.accounts.models import UserSession

    walked = {rule.rule: roles for rule, roles in walked_rules(throwaway_app)}
    assert walked["/throwaway/new-town"] == ["anonymous"]
    assert walked["/throwaway/end-my-session"] == ["buyer"]

    got = measure(throwaway_app, throwaway_app.test_client(), "/throwaway/new-town")
    assert got.status == 200
    assert len(got.writes) == 1 and got.writes[0].startswith("INSERT INTO towns")

    buyer = factories.signed_in_client(throwaway_app, 1)
    quiet = measure(throwaway_app, buyer, "/account")
    assert quiet.status == 200 and quiet.writes == ()
    # Idle for two minutes: the next page touches the session, and that is allowed.
    with throwaway_app.app_context():
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    with statements_run(throwaway_app) as statements:
        touched = measure(throwaway_app, buyer, "/account")
    assert touched.status == 200 and touched.writes == ()
    assert any(SESSION_TOUCH.fullmatch(" ".join(s.split())) for s in statements)
    # Any other change of the session row is a write.
    ended = measure(throwaway_app, buyer, "/throwaway/end-my-session")
    assert ended.status == 200
    assert len(ended.writes) == 1 and ended.writes[0].startswith("UPDATE user_sessions SET ended")
