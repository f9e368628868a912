"""AuditEvent: who did what to which object, the values before and after, from where and when.

Append-only. The ORM refuses to update or delete an event (see `guard_append_only`), and on
PostgreSQL a trigger refuses UPDATE and DELETE from any client; the attribution ledger gets the
same guard (market/campaign/models.py)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import DDL, JSON, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from market.accounts.models import User
from market.extensions import db
from market.models import UTCDateTime, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # The role the person acted in (finance, organizer, coop, coordinator, admin, system ...).
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    actor: Mapped[User | None] = relationship()

    @property
    def action_label(self) -> str:
        return str(ACTION_LABELS.get(self.action, self.action))

    @property
    def role_label(self) -> str:
        return str(ROLE_LABELS.get(self.actor_role, self.actor_role))

    @property
    def object_label(self) -> str:
        return str(OBJECT_LABELS.get(self.object_type, self.object_type))


# Every action written to the log, in the words of the people who read it.
ACTION_LABELS = {
    "transfer.confirmed": _l("确认对公转账到账"),
    "cash.received": _l("自提现场收款"),
    "cash.handed_over": _l("确认现金交接"),
    "refund.decided": _l("决定退款"),
    "refund.sent": _l("退款已转出"),
    "statement.issued": _l("出具结算单"),
    "statement.confirmed": _l("确认结算单"),
    "statement.disputed": _l("对结算单提出异议"),
    "payout.recorded": _l("登记向合作社付款"),
    "role.flags": _l("设置组织方/管理员/财务身份"),
    "role.unit": _l("任命单位角色"),
    "role.coop": _l("任命合作社角色"),
    "sku.added": _l("新增规格"),
    "sku.price_changed": _l("修改价格"),
    "sku.stock_adjusted": _l("调整库存"),
    "target.set": _l("设定单位目标"),
    "target.default_set": _l("批量设定目标"),
    "target.imported": _l("导入目标表"),
    "pairing.created": _l("新增结对"),
    "pairing.changed": _l("修改结对"),
    "pairing.ended": _l("结束结对"),
    "pairing.imported": _l("导入结对名单"),
    "groupbuy.extended": _l("团购延期"),
    "certificate.verified": _l("核验证书"),
    "certificate.rejected": _l("驳回证书"),
}
ROLE_LABELS = {
    "system": _l("系统"),
    "admin": _l("管理员"),
    "finance": _l("财务"),
    "organizer": _l("组织方"),
    "coop": _l("合作社"),
    "coordinator": _l("联络员"),
    "approver": _l("审批人"),
    "member": _l("职工"),
    "user": _l("用户"),
}
OBJECT_LABELS = {
    "Payment": _l("收款"),
    "Refund": _l("退款"),
    "Statement": _l("结算单"),
    "Payout": _l("合作社付款"),
    "User": _l("用户"),
    "Sku": _l("规格"),
    "Campaign": _l("帮扶活动"),
    "Pairing": _l("结对"),
    "GroupBuy": _l("团购"),
    "Certificate": _l("证书"),
}


# PostgreSQL refuses UPDATE and DELETE on append-only tables, whoever asks. TRUNCATE (used to
# empty the test database between tests) is a different statement and is not refused. The same
# SQL is in the migration that creates the trigger (revisions never import application code).
REFUSE_CHANGE_FUNCTION = """
CREATE OR REPLACE FUNCTION market_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql
"""


def append_only_trigger(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION market_refuse_change()"
    )


def protect_table(table) -> None:
    """Attach the trigger when the table is created through the metadata (tests, create_all)."""
    event.listen(
        table, "after_create", DDL(REFUSE_CHANGE_FUNCTION).execute_if(dialect="postgresql")
    )
    event.listen(
        table, "after_create", DDL(append_only_trigger(table.name)).execute_if(dialect="postgresql")
    )


protect_table(AuditEvent.__table__)


class AppendOnlyViolation(RuntimeError):
    pass


APPEND_ONLY: list[type] = [AuditEvent]


def register_append_only(model: type) -> type:
    if model not in APPEND_ONLY:
        APPEND_ONLY.append(model)
    return model


@event.listens_for(Session, "before_flush")
def guard_append_only(session: Session, _flush_context, _instances) -> None:
    """Through the ORM an append-only row may be added, never changed or deleted."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, tuple(APPEND_ONLY)) and (
            obj in session.deleted or session.is_modified(obj, include_collections=False)
        ):
            raise AppendOnlyViolation(f"{type(obj).__name__} is append-only")
