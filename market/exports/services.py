"""The rules of background exports.

- One job per export asked for: while a user's export of a kind with the same parameters is
  queued or running, asking again (a double click, a second tab, a concurrent POST) gives that
  job; the unique `active_key` makes it so even for two requests at the same instant.
- The job is sent to a worker after its commit (market.tasks.RUN_EXPORT; eager without Redis).
- The worker claims a queued job under a row lock, counts what it will write, writes the file
  under PRIVATE_UPLOAD_DIR/exports in batches of EXPORT_BATCH_ROWS ledger rows, and stores the
  progress after each batch in a short transaction of its own (which is also its heartbeat).
- A running job whose heartbeat is older than EXPORT_STALE_SECONDS lost its worker (killed,
  restarted) and is marked failed, as is a queued job no worker took within
  EXPORT_QUEUED_SECONDS; a failed job can be retried by its owner.
- Only the user who asked (or an admin) sees a job and downloads its file.
- Each user keeps their newest EXPORT_KEEP_PER_USER finished jobs; older ones and their files go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from market.accounts.models import User
from market.errors import NotFound
from market.exports.models import ExportJob, ExportKind, ExportStatus
from market.extensions import db
from market.models import utcnow
from market.transactions import unit_of_work

log = logging.getLogger(__name__)

FOLDER = "exports"  # one of market.uploads.PRIVATE_FOLDERS
DEFAULTS = {
    "EXPORT_BATCH_ROWS": 5000,
    "EXPORT_STALE_SECONDS": 600,
    "EXPORT_QUEUED_SECONDS": 3600,
    "EXPORT_KEEP_PER_USER": 5,
}


_COLUMNS = sa_inspect(ExportJob).column_attrs


def setting(name: str) -> int:
    return int(current_app.config.get(name, DEFAULTS[name]))


def _active_key(user_id: int, kind: ExportKind, parameters: dict[str, Any]) -> str:
    text = json.dumps([user_id, kind.value, parameters], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _active(key: str) -> ExportJob | None:
    return db.session.scalar(select(ExportJob).where(ExportJob.active_key == key))


@unit_of_work
def request_export(user: User, kind: ExportKind, parameters: dict[str, Any]) -> ExportJob:
    """Queue an export for `user`, or hand back the same export of theirs already queued or
    running; a new job is sent to a worker once committed."""
    key = _active_key(user.id, kind, parameters)
    existing = _active(key)
    if existing is not None and _is_stale(existing, utcnow()):
        _mark_failed(existing, utcnow())  # its worker is gone: this request starts afresh
        db.session.flush()
    elif existing is not None:
        return existing
    job = ExportJob(
        requested_by_id=user.id,
        kind=kind,
        parameters=parameters,
        status=ExportStatus.QUEUED,
        active_key=key,
    )
    db.session.add(job)
    return _commit_and_dispatch(job, key)


@unit_of_work
def retry_export(user: User, job_id: int) -> ExportJob:
    """A failed job of the user's is queued again (the state machine refuses any other), unless
    the same export is already queued or running: then that one is the answer."""
    job = owned_job(user, job_id, lock=True)
    if _is_stale(job, utcnow()):
        _mark_failed(job, utcnow())  # shown failed already; recorded now, before it is retried
    job.move_to(ExportStatus.QUEUED)
    key = _active_key(job.requested_by_id, job.kind, job.parameters)
    job.active_key = key
    job.error = ""
    job.rows_done = 0
    job.finished_at = None
    job.created_at = utcnow()  # its place in the queue
    return _commit_and_dispatch(job, key)


def _commit_and_dispatch(job: ExportJob, key: str) -> ExportJob:
    """Commit the queued job and send it to a worker; the same export asked for at the same
    instant that won the unique `active_key` is the answer instead."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = _active(key)
        if existing is None:
            raise
        return existing
    dispatch(job.id)
    return job


def owned_job(user: User, job_id: int, *, lock: bool = False) -> ExportJob:
    """The job, to the user who asked for it or an admin; anyone else is told it does not
    exist (404), as for a missing one."""
    job = db.session.get(ExportJob, job_id, with_for_update=lock)
    if job is None or (job.requested_by_id != user.id and not user.is_admin):
        raise NotFound(_("没有这个导出任务"))
    return job


def job_status(user: User, job_id: int) -> ExportJob:
    """The job as its owner sees it. A job whose worker was lost is shown failed (so the page
    never shows "running" forever) as a copy outside the session: a GET writes nothing; the
    periodic sweep records it, or the owner's retry does."""
    job = owned_job(user, job_id)
    now = utcnow()
    if not _is_stale(job, now):
        return job
    shown = ExportJob(**{column.key: getattr(job, column.key) for column in _COLUMNS})
    _mark_failed(shown, now)
    return shown


def jobs_of(user: User, limit: int = 20) -> list[ExportJob]:
    return list(
        db.session.scalars(
            select(ExportJob)
            .where(ExportJob.requested_by_id == user.id)
            .order_by(ExportJob.id.desc())
            .limit(limit)
        )
    )


# -- sending to a worker ---------------------------------------------------------------------------
def dispatch(job_id: int) -> None:
    """Send the committed job to a worker. Without a broker (the embedded shop) the task runs
    eagerly: in a thread of its own, so that the page with the progress bar comes back at once
    (in tests, EXPORTS_IN_THREAD is off and it runs before the response). A broker that cannot
    be reached fails the job, which can then be retried."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("CELERY_TASK_ALWAYS_EAGER") and app.config.get(
        "EXPORTS_IN_THREAD", not app.testing
    ):
        threading.Thread(
            target=_run_in_thread, args=(app, job_id), name=f"export-{job_id}", daemon=True
        ).start()
        return
    from market.tasks import RUN_EXPORT, celery_for

    try:
        celery_for(app).tasks[RUN_EXPORT].apply_async(args=[job_id])
    except Exception:  # no broker: say so on the job rather than leave it queued
        log.exception("could not queue export job %s", job_id)
        db.session.rollback()
        _fail(job_id, _("无法提交到后台处理，请稍后重试"))


def _run_in_thread(app: Flask, job_id: int) -> None:
    with app.app_context():
        try:
            run_export(job_id)
        finally:
            db.session.remove()


# -- the worker's side -----------------------------------------------------------------------------
def _private_root() -> Path:
    root = Path(current_app.config["PRIVATE_UPLOAD_DIR"]) / FOLDER
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def run_export(job_id: int) -> str:
    """Write the job's file. A job that is not queued (already taken by another delivery of the
    task, or finished) is left alone. Any failure marks the job failed, with a message its owner
    can read, and removes the partial file; it is never raised to the caller."""
    from market.exports.kinds import KINDS

    job = db.session.get(ExportJob, job_id, with_for_update=True)
    if job is None or job.status is not ExportStatus.QUEUED:
        db.session.rollback()
        return "skipped"
    now = utcnow()
    job.move_to(ExportStatus.RUNNING)
    job.attempts += 1
    job.started_at = job.heartbeat_at = now
    job.rows_done = 0
    attempt = job.attempts
    kind = KINDS[job.kind]
    parameters = dict(job.parameters)
    db.session.commit()

    stem = uuid.uuid4().hex
    part: Path | None = None
    try:
        total, upto_id = kind.extent(parameters)
        _update_running(job_id, attempt, rows_total=total)
        root = _private_root()
        part = root / f"{stem}.{kind.extension}.part"

        def progress(done: int) -> None:
            _update_running(job_id, attempt, rows_done=min(done, total))

        name = kind.write(part, parameters, upto_id, progress, setting("EXPORT_BATCH_ROWS"))
        final = root / f"{stem}.{kind.extension}"
        part.replace(final)
        part = final
    except Exception:
        log.exception("export job %s failed", job_id)
        db.session.rollback()
        if part is not None:
            part.unlink(missing_ok=True)
        _fail(job_id, _("导出时出错，请重试"), attempt)
        return "failed"

    job = db.session.get(ExportJob, job_id, with_for_update=True)
    if job is None or job.status is not ExportStatus.RUNNING or job.attempts != attempt:
        # Given up as lost meanwhile (and perhaps retried): this file belongs to no one.
        db.session.rollback()
        part.unlink(missing_ok=True)
        return "abandoned"
    job.move_to(ExportStatus.DONE)
    job.active_key = None
    job.file_name = name[:200]
    job.file_path = f"{FOLDER}/{part.name}"
    job.size_bytes = part.stat().st_size
    job.rows_done = job.rows_total
    job.finished_at = job.heartbeat_at = utcnow()
    owner = job.requested_by_id
    db.session.commit()
    purge_old_exports(owner)
    return "done"


def _update_running(job_id: int, attempt: int, **values: int) -> None:
    """Progress (and heartbeat) of a running job, in a short transaction of its own."""
    db.session.execute(
        update(ExportJob)
        .where(
            ExportJob.id == job_id,
            ExportJob.status == ExportStatus.RUNNING,
            ExportJob.attempts == attempt,
        )
        .values(heartbeat_at=utcnow(), **values)
    )
    db.session.commit()


def _fail(job_id: int, message: str, attempt: int | None = None) -> None:
    job = db.session.get(ExportJob, job_id, with_for_update=True)
    if job is None or job.finished or (attempt is not None and job.attempts != attempt):
        db.session.rollback()
        return
    job.move_to(ExportStatus.FAILED)
    job.active_key = None
    job.error = message[:500]
    job.finished_at = utcnow()
    db.session.commit()


def _is_stale(job: ExportJob, now: datetime) -> bool:
    if job.status is ExportStatus.RUNNING:
        beat = job.heartbeat_at or job.started_at or job.created_at
        return beat < now - timedelta(seconds=setting("EXPORT_STALE_SECONDS"))
    if job.status is ExportStatus.QUEUED:
        return job.created_at < now - timedelta(seconds=setting("EXPORT_QUEUED_SECONDS"))
    return False


def fail_stale_exports() -> int:
    """Mark failed every running job whose worker stopped beating, and every queued job no worker
    took in time (periodic: market.tasks / market.jobs). A request for the same export, or the
    owner's retry, records its own lost job first; the status page only shows it failed."""
    now = utcnow()
    running_before = now - timedelta(seconds=setting("EXPORT_STALE_SECONDS"))
    queued_before = now - timedelta(seconds=setting("EXPORT_QUEUED_SECONDS"))
    stale = db.session.scalars(
        select(ExportJob)
        .where(
            or_(
                (ExportJob.status == ExportStatus.RUNNING)
                & (ExportJob.heartbeat_at < running_before),
                (ExportJob.status == ExportStatus.QUEUED) & (ExportJob.created_at < queued_before),
            )
        )
        .with_for_update(skip_locked=True)
    ).all()
    for job in stale:
        _mark_failed(job, now)
    db.session.commit()
    return len(stale)


def _mark_failed(job: ExportJob, now: datetime) -> None:
    """A job whose worker was lost (running) or never came (queued) fails, saying which."""
    lost = job.status is ExportStatus.RUNNING
    job.move_to(ExportStatus.FAILED)
    job.active_key = None
    job.finished_at = now
    job.error = _("导出中断（后台进程停止），请重试") if lost else _("没有后台进程处理，请重试")


def purge_old_exports(user_id: int | None = None) -> int:
    """Each user keeps the newest EXPORT_KEEP_PER_USER finished jobs; older jobs and their files
    are removed."""
    keep = setting("EXPORT_KEEP_PER_USER")
    query = select(ExportJob).where(ExportJob.status.in_([ExportStatus.DONE, ExportStatus.FAILED]))
    if user_id is not None:
        query = query.where(ExportJob.requested_by_id == user_id)
    seen: dict[int, int] = {}
    removed = []
    for job in db.session.scalars(query.order_by(ExportJob.id.desc())):
        seen[job.requested_by_id] = seen.get(job.requested_by_id, 0) + 1
        if seen[job.requested_by_id] > keep:
            removed.append(job)
    root = Path(current_app.config["PRIVATE_UPLOAD_DIR"])
    for job in removed:
        if job.file_path:
            (root / job.file_path).unlink(missing_ok=True)
        db.session.delete(job)
    db.session.commit()
    return len(removed)


def expire_exports() -> int:
    """The periodic sweep: stale jobs failed, old files removed."""
    return fail_stale_exports() + purge_old_exports()
