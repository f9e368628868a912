"""Orders. Lines snapshot what was bought (name, spec, price, co-op, village); each co-op's goods
travel as one Shipment. Every status change goes through an allowed-transitions table."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.batches.models import Batch
from market.catalog.models import Sku
from market.directory.models import Coop, Unit
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum, utcnow


class OrderMode(enum.StrEnum):
    RETAIL = "retail"
    GROUP_BUY = "group_buy"
    UNIT_PURCHASE = "unit_purchase"
    CUSTOM = "custom"


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    # 先货后款: a unit's order shipped before it is paid; the payment term runs from shipping.
    ON_CREDIT = "on_credit"
    PAID = "paid"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ShipmentStatus(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    # 预售: a parcel of goods not harvested yet; it may ship once the co-op announces the harvest.
    AWAITING_HARVEST = "awaiting_harvest"
    TO_SHIP = "to_ship"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class DeliveryMethod(enum.StrEnum):
    DELIVERY = "delivery"
    PICKUP = "pickup"


ORDER_MODE_LABELS = {
    OrderMode.RETAIL: _l("零售"),
    OrderMode.GROUP_BUY: _l("爱心团购"),
    OrderMode.UNIT_PURCHASE: _l("以买代帮"),
    OrderMode.CUSTOM: _l("产品定制"),
}
ORDER_STATUS_LABELS = {
    OrderStatus.PENDING_PAYMENT: _l("待付款"),
    OrderStatus.ON_CREDIT: _l("先货后款 · 待付款"),
    OrderStatus.PAID: _l("已付款"),
    OrderStatus.COMPLETED: _l("已完成"),
    OrderStatus.CANCELLED: _l("已取消"),
    OrderStatus.EXPIRED: _l("已超时关闭"),
}
# A group-buy order whose card is authorised, waiting for the close: not 待付款 (nothing is owed
# now), not 已付款 (nothing was taken yet).
CARD_HELD_LABEL = _l("已授权 · 待成团")
SHIPMENT_STATUS_LABELS = {
    ShipmentStatus.AWAITING_PAYMENT: _l("待付款"),
    ShipmentStatus.AWAITING_HARVEST: _l("预售 · 待采收"),
    ShipmentStatus.TO_SHIP: _l("待发货"),
    ShipmentStatus.SHIPPED: _l("已发货"),
    ShipmentStatus.DELIVERED: _l("已收货"),
    ShipmentStatus.CANCELLED: _l("已取消"),
}


class Cart(TimestampMixin, db.Model):
    """A guest's cart is found through the session; a signed-in user's through user_id."""

    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)

    items: Mapped[list[CartItem]] = relationship(
        back_populates="cart", cascade="all, delete-orphan", order_by="CartItem.id"
    )


class CartItem(db.Model):
    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("cart_id", "sku_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cart_id: Mapped[int] = mapped_column(ForeignKey("carts.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    cart: Mapped[Cart] = relationship(back_populates="items")
    sku: Mapped[Sku] = relationship()


class Address(TimestampMixin, db.Model):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(100))  # 省市区
    detail: Mapped[str] = mapped_column(String(200))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def one_line(self) -> str:
        return f"{self.region}{self.detail}"


class Order(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key"),
        Index("ix_orders_status_expires", "status", "expires_at"),
        CheckConstraint("total_fen >= 0", name="total_nonnegative"),
        CheckConstraint("paid_fen >= 0", name="paid_nonnegative"),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= paid_fen", name="refund_within_paid"
        ),
    )

    TRANSITIONS: ClassVar[dict[OrderStatus, set[OrderStatus]]] = {
        OrderStatus.PENDING_PAYMENT: {
            OrderStatus.PAID,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        },
        # Goods out, money owed: only the unit's transfer moves it on (no cancel, no expiry).
        OrderStatus.ON_CREDIT: {OrderStatus.PAID},
        OrderStatus.PAID: {OrderStatus.COMPLETED, OrderStatus.CANCELLED},
        OrderStatus.COMPLETED: set(),
        OrderStatus.CANCELLED: set(),
        OrderStatus.EXPIRED: set(),
    }
    # 先货后款: moves only some modes may make. A unit's approved purchase and a custom order
    # may ship before payment (government units pay by transfer against the invoice, within
    # PAYMENT_TERM_DAYS of shipping); retail and group-buy orders never ship unpaid.
    MODE_TRANSITIONS: ClassVar[dict[OrderMode, dict[OrderStatus, set[OrderStatus]]]] = {
        OrderMode.UNIT_PURCHASE: {OrderStatus.PENDING_PAYMENT: {OrderStatus.ON_CREDIT}},
        OrderMode.CUSTOM: {OrderStatus.PENDING_PAYMENT: {OrderStatus.ON_CREDIT}},
    }

    STATUS_LABELS = ORDER_STATUS_LABELS
    TRANSITION_MESSAGE = _l("订单当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    mode: Mapped[OrderMode] = mapped_column(
        text_enum(OrderMode, "order_mode"), default=OrderMode.RETAIL
    )
    # The unit the order is placed for (group-buy, unit purchase, custom product), if any.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    # The unit whose referral link the buyer followed last, within the attribution window.
    referral_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    status: Mapped[OrderStatus] = mapped_column(
        text_enum(OrderStatus, "order_status"), default=OrderStatus.PENDING_PAYMENT, index=True
    )
    total_fen: Mapped[int] = mapped_column(Integer)
    paid_fen: Mapped[int] = mapped_column(Integer, default=0)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    delivery_method: Mapped[DeliveryMethod] = mapped_column(
        text_enum(DeliveryMethod, "delivery_method")
    )
    recipient: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(300))  # delivery address or pickup point
    note: Mapped[str] = mapped_column(String(300), default="")
    idempotency_key: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # 先货后款: when an order shipped before payment must be paid (shipping + the term).
    payment_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)

    buyer: Mapped[User] = relationship()
    unit: Mapped[Unit | None] = relationship(foreign_keys=[unit_id])
    referral_unit: Mapped[Unit | None] = relationship(foreign_keys=[referral_unit_id])
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderLine.id"
    )
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Shipment.id"
    )

    @property
    def mode_label(self) -> str:
        return str(ORDER_MODE_LABELS[self.mode])

    def allowed_moves(self) -> set[OrderStatus]:
        """The shared table, widened by this order's mode (先货后款); `move_to` checks this."""
        return self.TRANSITIONS[self.status] | self.MODE_TRANSITIONS.get(self.mode, {}).get(
            self.status, set()
        )

    @property
    def buyer_may_cancel(self) -> bool:
        """Whether the order page offers 取消订单: unpaid, or paid with every parcel still to
        ship (not a group-buy's, not a presale's waiting for the harvest). The service
        (payments.refunds.cancel_order) says why not to anyone who posts anyway."""
        if self.mode == OrderMode.GROUP_BUY:
            return False
        if self.status == OrderStatus.PENDING_PAYMENT:
            return True
        return self.status == OrderStatus.PAID and all(
            shipment.status == ShipmentStatus.TO_SHIP for shipment in self.shipments
        )

    @property
    def awaits_payment(self) -> bool:
        """Money is still owed: not paid yet, before or (先货后款) after shipping."""
        return self.status in (OrderStatus.PENDING_PAYMENT, OrderStatus.ON_CREDIT)

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Shipped on credit and still unpaid past its due date."""
        return (
            self.status == OrderStatus.ON_CREDIT
            and self.payment_due_at is not None
            and self.payment_due_at < (now or utcnow())
        )

    @property
    def overdue(self) -> bool:
        return self.is_overdue()

    @property
    def is_card_held(self) -> bool:
        """A group-buy order still pending whose card payment is authorised: the money is held
        at the bank and taken (at the tier price reached) only when the group-buy succeeds."""
        if self.mode != OrderMode.GROUP_BUY or self.status != OrderStatus.PENDING_PAYMENT:
            return False
        from market.payments.models import Payment, PaymentStatus  # payments build on orders

        return (
            db.session.scalar(
                select(Payment.id)
                .where(Payment.order_id == self.id, Payment.status == PaymentStatus.AUTHORIZED)
                .limit(1)
            )
            is not None
        )

    @property
    def buyer_status_label(self) -> str:
        """The status as the buyer reads it (我的订单, the order page): 已授权 · 待成团 for a
        card-held group-buy order rather than 待付款."""
        return str(CARD_HELD_LABEL) if self.is_card_held else self.status_label

    @property
    def net_paid_fen(self) -> int:
        return self.paid_fen - self.refunded_fen

    @property
    def display_number(self) -> str:
        return self.number


class Shipment(StateMachine, TimestampMixin, db.Model):
    """One co-op's part of an order, fulfilled on its own."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("order_id", "coop_id"),
        Index("ix_shipments_coop_status", "coop_id", "status"),
    )

    TRANSITIONS: ClassVar[dict[ShipmentStatus, set[ShipmentStatus]]] = {
        ShipmentStatus.AWAITING_PAYMENT: {
            ShipmentStatus.TO_SHIP,
            ShipmentStatus.AWAITING_HARVEST,
            ShipmentStatus.CANCELLED,
        },
        # 预售: paid or not, it waits for the harvest; only the harvest lets it ship.
        ShipmentStatus.AWAITING_HARVEST: {ShipmentStatus.TO_SHIP, ShipmentStatus.CANCELLED},
        ShipmentStatus.TO_SHIP: {ShipmentStatus.SHIPPED, ShipmentStatus.CANCELLED},
        ShipmentStatus.SHIPPED: {ShipmentStatus.DELIVERED},
        ShipmentStatus.DELIVERED: set(),
        ShipmentStatus.CANCELLED: set(),
    }

    STATUS_LABELS = SHIPMENT_STATUS_LABELS
    TRANSITION_MESSAGE = _l("包裹当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    status: Mapped[ShipmentStatus] = mapped_column(
        text_enum(ShipmentStatus, "shipment_status"), default=ShipmentStatus.AWAITING_PAYMENT
    )
    carrier: Mapped[str] = mapped_column(String(40), default="")
    tracking_number: Mapped[str] = mapped_column(String(60), default="")
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="shipments")
    coop: Mapped[Coop] = relationship()
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="shipment", order_by="OrderLine.id"
    )

    @property
    def value_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)


class OrderLine(db.Model):
    """What was bought, as it was when bought: later price or name changes do not touch it."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_fen >= 0", name="unit_price_nonnegative"),
        CheckConstraint("amount_fen = unit_price_fen * quantity", name="amount_is_price_times_qty"),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refund_within_amount"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    product_name: Mapped[str] = mapped_column(String(80))
    spec: Mapped[str] = mapped_column(String(60))
    unit_price_fen: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    # Stock is taken at placement; this says it went back (expiry, cancellation) exactly once.
    stock_returned: Mapped[bool] = mapped_column(Boolean, default=False)
    # False when the goods come out of a reservation (a group-buy's cap), not the SKU's stock.
    holds_stock: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The batch (批次) it shipped from, picked when the co-op ships; NULL: not shipped yet, or
    # shipped from stock outside any batch.
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id"), index=True)

    order: Mapped[Order] = relationship(back_populates="lines")
    shipment: Mapped[Shipment] = relationship(back_populates="lines")
    sku: Mapped[Sku] = relationship()
    batch: Mapped[Batch | None] = relationship()

    @property
    def refundable_fen(self) -> int:
        return self.amount_fen - self.refunded_fen


class InvoiceStatus(enum.StrEnum):
    REQUESTED = "requested"
    ISSUED = "issued"


INVOICE_STATUS_LABELS = {
    InvoiceStatus.REQUESTED: _l("发票未开"),
    InvoiceStatus.ISSUED: _l("发票已开"),
}


class Invoice(StateMachine, TimestampMixin, db.Model):
    """The invoice (发票) a unit asked for on one of its orders: 抬头, 税号 and the address it
    goes to, kept as data; issued by the co-op or the service centre with its number and,
    usually, the e-invoice file (PDF, OFD or a picture) kept as a private document."""

    __tablename__ = "invoices"

    TRANSITIONS: ClassVar[dict[InvoiceStatus, set[InvoiceStatus]]] = {
        InvoiceStatus.REQUESTED: {InvoiceStatus.ISSUED},
        InvoiceStatus.ISSUED: set(),
    }
    STATUS_LABELS = INVOICE_STATUS_LABELS
    TRANSITION_MESSAGE = _l("发票当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))  # 抬头
    tax_id: Mapped[str] = mapped_column(String(30))  # 税号
    address: Mapped[str] = mapped_column(String(300), default="")  # where it is sent (mail or post)
    status: Mapped[InvoiceStatus] = mapped_column(
        text_enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.REQUESTED, index=True
    )
    number: Mapped[str] = mapped_column(String(40), default="")  # 发票号码
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    file_path: Mapped[str | None] = mapped_column(String(200))

    order: Mapped[Order] = relationship()
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    issued_by: Mapped[User | None] = relationship(foreign_keys=[issued_by_id])
