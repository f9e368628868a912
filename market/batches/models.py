"""A batch (批次) of one SKU: when and where it was harvested, how much came in, how much is left
to ship, and what the inspection found. Its code is the public handle of the trace page."""

from __future__ import annotations

import enum
import secrets
from datetime import date
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.catalog.models import Sku
from market.extensions import db
from market.models import StateMachine, TimestampMixin, text_enum

# No 0/O, 1/I/L: a code read off a label and typed by hand stays unambiguous.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 9


def new_code() -> str:
    """A random code (31^9 ≈ 2.6e13): codes of one co-op's batches are not guessable in turn."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class BatchStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


BATCH_STATUS_LABELS = {
    BatchStatus.OPEN: _l("在售批次"),
    BatchStatus.CLOSED: _l("已结束"),
}


class InspectionResult(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_TESTED = "not_tested"


INSPECTION_LABELS = {
    InspectionResult.PASSED: _l("合格"),
    InspectionResult.FAILED: _l("不合格"),
    InspectionResult.NOT_TESTED: _l("未检"),
}

# The Chinese words a caller may pass for a result (record_batch(..., inspection_result="未检")).
INSPECTION_WORDS = {"合格": "passed", "不合格": "failed", "未检": "not_tested"}


def inspection_result_of(value: InspectionResult | str) -> InspectionResult:
    """The result named by an enum member, its value or its Chinese word; ValueError otherwise."""
    if isinstance(value, InspectionResult):
        return value
    return InspectionResult(INSPECTION_WORDS.get(value, value))


class Batch(StateMachine, TimestampMixin, db.Model):
    """open -> closed: a closed batch takes no more stock and ships nothing more; a batch whose
    last unit ships closes by itself."""

    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint("quantity_received >= 0", name="quantity_received_nonnegative"),
        CheckConstraint("quantity_remaining >= 0", name="quantity_remaining_nonnegative"),
        CheckConstraint(
            "quantity_remaining <= quantity_received", name="remaining_within_received"
        ),
        Index("ix_batches_sku_status", "sku_id", "status"),
    )

    TRANSITIONS: ClassVar[dict[BatchStatus, set[BatchStatus]]] = {
        BatchStatus.OPEN: {BatchStatus.CLOSED},
        BatchStatus.CLOSED: set(),
    }
    STATUS_LABELS = BATCH_STATUS_LABELS
    TRANSITION_MESSAGE = _l("批次当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    code: Mapped[str] = mapped_column(String(12), unique=True, default=new_code)
    harvested_on: Mapped[date] = mapped_column(Date)
    plot: Mapped[str] = mapped_column(String(80), default="")
    quantity_received: Mapped[int] = mapped_column(Integer, default=0)
    quantity_remaining: Mapped[int] = mapped_column(Integer, default=0)
    inspection_result: Mapped[InspectionResult] = mapped_column(
        text_enum(InspectionResult, "inspection_result"), default=InspectionResult.NOT_TESTED
    )
    inspection_path: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[BatchStatus] = mapped_column(
        text_enum(BatchStatus, "batch_status"), default=BatchStatus.OPEN
    )

    sku: Mapped[Sku] = relationship()

    @property
    def inspection_label(self) -> str:
        return str(INSPECTION_LABELS[self.inspection_result])

    @property
    def is_open(self) -> bool:
        return self.status == BatchStatus.OPEN
