"""An export job: asked for by one user, run by a worker, its file kept privately."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum


class ExportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


EXPORT_STATUS_LABELS = {
    ExportStatus.QUEUED: _l("排队中"),
    ExportStatus.RUNNING: _l("正在导出"),
    ExportStatus.DONE: _l("已完成"),
    ExportStatus.FAILED: _l("导出失败"),
}


class ExportKind(enum.StrEnum):
    CAMPAIGN_XLSX = "campaign_xlsx"  # the assessment workbook, the whole ledger included
    LEDGER_CSV = "ledger_csv"


EXPORT_KIND_LABELS = {
    ExportKind.CAMPAIGN_XLSX: _l("考核表（XLSX）"),
    ExportKind.LEDGER_CSV: _l("台账明细（CSV）"),
}


class ExportJob(StateMachine, TimestampMixin, db.Model):
    """One export someone asked for. `active_key` is set while the job is queued or running and
    is unique: the same export asked for twice at once (a double click, two tabs) is one job."""

    __tablename__ = "export_jobs"
    __table_args__ = (
        CheckConstraint("rows_done >= 0 AND rows_total >= 0", name="rows_nonnegative"),
        CheckConstraint("size_bytes >= 0", name="size_nonnegative"),
        Index("ix_export_jobs_status", "status"),
    )

    TRANSITIONS: ClassVar[dict[ExportStatus, set[ExportStatus]]] = {
        # A queued job fails when it cannot be sent to a worker, or is never picked up.
        ExportStatus.QUEUED: {ExportStatus.RUNNING, ExportStatus.FAILED},
        ExportStatus.RUNNING: {ExportStatus.DONE, ExportStatus.FAILED},
        ExportStatus.DONE: set(),
        ExportStatus.FAILED: {ExportStatus.QUEUED},  # retried
    }
    STATUS_LABELS = EXPORT_STATUS_LABELS
    TRANSITION_MESSAGE = _l("导出任务当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[ExportKind] = mapped_column(text_enum(ExportKind, "export_kind"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ExportStatus] = mapped_column(
        text_enum(ExportStatus, "export_status"), default=ExportStatus.QUEUED
    )
    active_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[str] = mapped_column(String(200), default="")  # offered to the browser
    file_path: Mapped[str] = mapped_column(String(200), default="")  # under PRIVATE_UPLOAD_DIR
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written with every progress step: a running job whose heartbeat stops was lost.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    requested_by: Mapped[User] = relationship()

    @property
    def kind_label(self) -> str:
        return str(EXPORT_KIND_LABELS[self.kind])

    @property
    def percent(self) -> int:
        if self.status is ExportStatus.DONE:
            return 100
        if self.rows_total <= 0:
            return 0
        return min(99, self.rows_done * 100 // self.rows_total)

    @property
    def finished(self) -> bool:
        return self.status in (ExportStatus.DONE, ExportStatus.FAILED)
