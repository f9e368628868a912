"""Exports of any size (issue 13, point 5): the whole ledger is written by a background job (eager
here) into a private file, with its progress stored as it goes; the organizer who asked sees a
progress bar, then a download link; a failed or lost job says so and can be retried; nobody
else sees the job; a double click is one job."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from market.campaign.models import AttributionEntry
from market.exports.models import ExportJob, ExportStatus
from market.extensions import db
from market.models import utcnow
from tests import factories
from tests.campaign.conftest import first_line, set_targets

SHEETS = ["单位", "村", "镇", "分类", "提醒约谈名单", "台账明细", "说明"]
TOKEN = "0123456789abcdef0123456789abcdef"
REDIS_URL = os.environ.get("REDIS_URL", "")


def _fen(value) -> int:
    return int((Decimal(str(value)) * 100).to_integral_value())


@pytest.fixture
def refunded(app, client_as, world, campaign, sales):
    """The four ledger entries of the campaign's sales and a ¥10 refund on the honey."""
    line_id, _coop = first_line(app, sales.honey)
    client_as("coop_manager").post(
        f"/coop/lines/{line_id}/refund", data={"amount": "10", "reason": "破损"}
    )
    set_targets(app, campaign.id, {world.unit: 1_000_000, world.other_unit: 5_000})
    return sales


@pytest.fixture
def small_batches(app, monkeypatch):
    """Three ledger rows a batch: the four entries take two batches (and two progress steps)."""
    monkeypatch.setitem(app.config, "EXPORT_BATCH_ROWS", 3)


def _entry_ids(app, **where) -> list[int]:
    with app.app_context():
        query = select(AttributionEntry.id).order_by(AttributionEntry.id)
        for name, value in where.items():
            query = query.where(getattr(AttributionEntry, name) == value)
        return list(db.session.scalars(query))


def _start(client, campaign_id: int, kind: str, query: str = "", token: str | None = None):
    data = {"form_token": token or uuid.uuid4().hex}
    return client.post(f"/admin/campaigns/{campaign_id}/exports/{kind}{query}", data=data)


def _job_id(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[-800:]
    location = response.headers["Location"]
    assert location.startswith("/exports/")
    return int(location.rsplit("/", 1)[1])


def _status(client, job_id: int) -> dict:
    response = client.get(f"/exports/{job_id}/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def _download(client, job_id: int):
    response = client.get(f"/exports/{job_id}/download")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Content-Disposition"].startswith("attachment")
    return response


def _csv_rows(raw: bytes) -> list[list[str]]:
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def _sheet_rows(sheet) -> list[dict]:
    values = list(sheet.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


# -- the file holds the whole ledger ------------------------------------------------------------
def test_the_background_workbook_holds_every_entry_across_batches(
    app, client_as, world, campaign, refunded, small_batches
):
    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "campaign_xlsx"))

    page = organizer.get(f"/exports/{job_id}").get_data(as_text=True)
    assert "已完成" in page and 'id="export-download"' in page
    assert "export-progress" in page and ".js" in page  # the polling script, same origin
    status = _status(organizer, job_id)
    assert status["status"] == "done" and status["percent"] == 100
    assert status["rows_done"] == status["rows_total"] == 4
    assert status["download_url"] == f"/exports/{job_id}/download"

    response = _download(organizer, job_id)
    assert response.mimetype == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "2026年我为果农办实事" in unquote(response.headers["Content-Disposition"])
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == SHEETS
    ledger = _sheet_rows(book["台账明细"])
    assert [row["编号"] for row in ledger] == _entry_ids(app) and len(ledger) == 4
    assert sum(_fen(row["金额（元）"]) for row in ledger) == 34_400
    assert [row["类型"] for row in ledger].count("退款") == 1
    assert book["台账明细"]["B2"].number_format == "yyyy-mm-dd hh:mm:ss"
    # The same sheets and figures as the workbook downloaded at once.
    at_once = load_workbook(
        io.BytesIO(organizer.get(f"/admin/campaigns/{campaign.id}/export.xlsx").data)
    )
    for name in SHEETS[:6]:
        assert list(book[name].iter_rows(values_only=True)) == list(
            at_once[name].iter_rows(values_only=True)
        ), name


def test_the_background_ledger_csv_equals_the_ledger(
    app, client_as, world, campaign, refunded, small_batches
):
    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    response = _download(organizer, job_id)
    assert response.mimetype == "text/csv"
    rows = _csv_rows(response.data)
    assert rows[0][0] == "编号" and rows[0][-1] == "金额（元）"
    assert [int(row[0]) for row in rows[1:]] == _entry_ids(app)
    assert sum(_fen(row[-1]) for row in rows[1:]) == 34_400
    # Row for row what the synchronous CSV holds.
    at_once = organizer.get(f"/admin/campaigns/{campaign.id}/ledger.csv").get_data()
    assert rows == _csv_rows(at_once)
    with app.app_context():
        job = db.session.get(ExportJob, job_id)
        assert (job.rows_done, job.rows_total, job.attempts) == (4, 4, 1)
        assert job.size_bytes == len(response.data) and job.active_key is None
        assert job.file_path.startswith("exports/")
        # Stored privately, not under the public /media folder.
        assert (Path(app.config["PRIVATE_UPLOAD_DIR"]) / job.file_path).is_file()
    assert organizer.get(f"/media/{job.file_path}").status_code == 404


def test_the_jobs_follow_the_dashboards_filters(app, client_as, world, campaign, refunded):
    organizer = client_as("organizer")
    page = organizer.get(f"/admin/campaigns/{campaign.id}/dashboard?town={world.other_town}")
    action = f"/admin/campaigns/{campaign.id}/exports/ledger_csv?town={world.other_town}"
    assert action in page.get_data(as_text=True)
    job_id = _job_id(_start(organizer, campaign.id, "ledger_csv", f"?town={world.other_town}"))
    rows = _csv_rows(_download(organizer, job_id).data)
    assert len(rows) == 1 + 2 and {row[7] for row in rows[1:]} == {"根子镇"}
    assert _status(organizer, job_id)["rows_total"] == 2


def test_a_ledger_with_no_entries_gives_a_header_only_file(app, client_as, world, campaign):
    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "campaign_xlsx"))
    assert _status(organizer, job_id)["status"] == "done"
    book = load_workbook(io.BytesIO(_download(organizer, job_id).data))
    assert book.sheetnames == SHEETS
    assert len(list(book["台账明细"].iter_rows())) == 1


# -- who sees a job -----------------------------------------------------------------------------
@pytest.fixture
def other_organizer(app):
    with app.app_context():
        user = factories.make_user("李组织", "li.organizer@example.com", is_organizer=True)
        db.session.commit()
        return factories.signed_in_client(app, user.id)


def test_only_the_organizer_who_asked_and_admins_see_a_job(
    app, client_as, world, campaign, refunded, other_organizer
):
    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    urls = [f"/exports/{job_id}", f"/exports/{job_id}/status", f"/exports/{job_id}/download"]
    for url in urls:
        assert other_organizer.get(url).status_code == 404, url
        assert client_as("admin").get(url).status_code == 200, url
        for role in ("coordinator", "employee", "finance", "coop_manager", "buyer"):
            assert client_as(role).get(url).status_code == 403, (role, url)
        assert app.test_client().get(url).status_code == 302, url  # sign in first
    assert other_organizer.post(f"/exports/{job_id}/retry").status_code == 404
    assert client_as("coordinator").post(f"/exports/{job_id}/retry").status_code == 403
    listed = other_organizer.get("/exports").get_data(as_text=True)
    assert f'data-job-id="{job_id}"' not in listed
    assert f'data-job-id="{job_id}"' in organizer.get("/exports").get_data(as_text=True)
    assert (
        client_as("coordinator")
        .post(f"/admin/campaigns/{campaign.id}/exports/ledger_csv")
        .status_code
        == 403
    )
    with app.app_context():
        assert db.session.scalar(select(func.count(ExportJob.id))) == 1


def test_an_unknown_kind_of_export_is_not_found(app, client_as, campaign, refunded):
    organizer = client_as("organizer")
    for kind in ("1", "units_csv", "CAMPAIGN_XLSX"):
        response = _start(organizer, campaign.id, kind)
        assert response.status_code == 404, kind
    assert _start(organizer, 999_999, "ledger_csv").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count(ExportJob.id))) == 0


def test_the_laggard_list_starts_the_workbook_as_of_its_day(
    app, client_as, world, campaign, refunded
):
    organizer = client_as("organizer")
    day = (campaign.starts_on + timedelta(days=3)).isoformat()
    page = organizer.get(f"/admin/campaigns/{campaign.id}/laggards?on={day}").get_data(as_text=True)
    action = f"/admin/campaigns/{campaign.id}/exports/campaign_xlsx?on={day}"
    assert f'method="post" id="export-xlsx-form" class="d-none" action="{action}"' in page
    job_id = _job_id(_start(organizer, campaign.id, "campaign_xlsx", f"?on={day}"))
    book = load_workbook(io.BytesIO(_download(organizer, job_id).data))
    about = dict(book["说明"].iter_rows(values_only=True))
    assert about["提醒约谈名单截至"] == day


# -- one job per export asked for ---------------------------------------------------------------
def test_a_double_click_is_one_job(app, client_as, world, campaign, refunded):
    organizer = client_as("organizer")
    first = _job_id(_start(organizer, campaign.id, "campaign_xlsx", token=TOKEN))
    again = _start(organizer, campaign.id, "campaign_xlsx", token=TOKEN)
    assert again.status_code == 303 and again.headers["Location"] == f"/exports/{first}"
    with app.app_context():
        assert db.session.scalar(select(func.count(ExportJob.id))) == 1


@pytest.fixture
def no_worker(app, monkeypatch):
    """Celery with a broker but no worker: jobs stay queued."""
    from market.tasks import make_celery

    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setitem(app.config, "REDIS_URL", "")
    monkeypatch.setitem(app.extensions, "celery", None)
    app.extensions["celery"] = make_celery(app)  # memory:// broker


def test_the_same_export_asked_for_while_queued_is_the_same_job(
    app, client_as, world, campaign, refunded, no_worker
):
    organizer = client_as("organizer")
    first = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    second = _job_id(_start(organizer, campaign.id, "ledger_csv"))  # another tab, another token
    assert second == first
    assert _status(organizer, first)["status"] == "queued"
    page = organizer.get(f"/exports/{first}").get_data(as_text=True)
    assert "排队中" in page and 'data-status="queued"' in page
    # Another export (other filters, another kind) is a job of its own.
    other = _job_id(_start(organizer, campaign.id, "ledger_csv", f"?town={world.other_town}"))
    assert other != first
    assert _job_id(_start(organizer, campaign.id, "campaign_xlsx")) not in (first, other)


@pytest.mark.postgres_only
def test_concurrent_requests_for_the_same_export_make_one_job(
    app, client_as, world, campaign, refunded, no_worker
):
    from concurrent.futures import ThreadPoolExecutor

    clients = [client_as("organizer") for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        ids = list(pool.map(lambda c: _job_id(_start(c, campaign.id, "campaign_xlsx")), clients))
    assert len(set(ids)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(ExportJob.id))) == 1


# -- failures, lost workers, retries ------------------------------------------------------------
def test_a_failed_export_says_so_and_can_be_retried(
    app, client_as, world, campaign, refunded, monkeypatch, tmp_path
):
    organizer = client_as("organizer")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("the private folder cannot be made here")
    private = app.config["PRIVATE_UPLOAD_DIR"]
    monkeypatch.setitem(app.config, "PRIVATE_UPLOAD_DIR", str(blocked))
    job_id = _job_id(_start(organizer, campaign.id, "campaign_xlsx"))

    status = _status(organizer, job_id)
    assert status["status"] == "failed" and status["download_url"] is None
    assert status["error"] == "导出时出错，请重试"
    page = organizer.get(f"/exports/{job_id}").get_data(as_text=True)
    assert "导出失败" in page and "导出时出错，请重试" in page and 'id="export-retry"' in page
    assert organizer.get(f"/exports/{job_id}/download").status_code == 404

    monkeypatch.setitem(app.config, "PRIVATE_UPLOAD_DIR", private)
    retried = organizer.post(f"/exports/{job_id}/retry", data={"form_token": uuid.uuid4().hex})
    assert retried.status_code == 303 and retried.headers["Location"] == f"/exports/{job_id}"
    assert _status(organizer, job_id)["status"] == "done"
    book = load_workbook(io.BytesIO(_download(organizer, job_id).data))
    assert len(_sheet_rows(book["台账明细"])) == 4
    with app.app_context():
        assert db.session.get(ExportJob, job_id).attempts == 2
    # A finished job is not retried.
    again = organizer.post(f"/exports/{job_id}/retry", follow_redirects=True)
    assert "不能改为" in again.get_data(as_text=True)


def _lost(app, job_id: int, minutes: int) -> None:
    """What a worker killed mid-export leaves: a running job whose heartbeat stopped."""
    with app.app_context():
        job = db.session.get(ExportJob, job_id)
        job.status = ExportStatus.RUNNING
        job.attempts = 1
        job.rows_total, job.rows_done = 4, 3
        job.started_at = job.heartbeat_at = utcnow() - timedelta(minutes=minutes)
        db.session.commit()


def test_a_job_whose_worker_was_lost_is_shown_failed_and_a_retry_finishes_it(
    app, client_as, world, campaign, refunded, no_worker
):
    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    _lost(app, job_id, minutes=2)
    running = _status(organizer, job_id)  # still beating recently enough: running
    assert (running["status"], running["percent"]) == ("running", 75)
    assert "正在导出" in organizer.get(f"/exports/{job_id}").get_data(as_text=True)

    _lost(app, job_id, minutes=60)
    status = _status(organizer, job_id)
    assert status["status"] == "failed" and "导出中断" in status["error"]
    page = organizer.get(f"/exports/{job_id}").get_data(as_text=True)
    assert "导出中断" in page
    with app.app_context():  # shown, not written: a GET changes nothing (the retry records it)
        assert db.session.get(ExportJob, job_id).status == ExportStatus.RUNNING

    app.extensions["celery"].conf.task_always_eager = True  # a worker is back
    app.config["CELERY_TASK_ALWAYS_EAGER"] = True
    retried = organizer.post(f"/exports/{job_id}/retry", data={"form_token": uuid.uuid4().hex})
    assert retried.status_code == 303
    assert _status(organizer, job_id)["status"] == "done"
    rows = _csv_rows(_download(organizer, job_id).data)
    assert [int(row[0]) for row in rows[1:]] == _entry_ids(app)


def test_the_periodic_sweep_fails_lost_and_never_taken_jobs(
    app, client_as, world, campaign, refunded, no_worker
):
    from market import jobs

    organizer = client_as("organizer")
    lost = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    never_taken = _job_id(_start(organizer, campaign.id, "campaign_xlsx"))
    fresh = _job_id(_start(organizer, campaign.id, "ledger_csv", f"?town={world.town}"))
    _lost(app, lost, minutes=60)
    with app.app_context():
        db.session.get(ExportJob, never_taken).created_at = utcnow() - timedelta(hours=2)
        db.session.commit()
    jobs.run_once(app)
    with app.app_context():
        states = {job.id: (job.status, job.error) for job in db.session.scalars(select(ExportJob))}
    assert states[lost] == (ExportStatus.FAILED, "导出中断（后台进程停止），请重试")
    assert states[never_taken] == (ExportStatus.FAILED, "没有后台进程处理，请重试")
    assert states[fresh] == (ExportStatus.QUEUED, "")


def test_a_task_delivered_again_changes_nothing(app, client_as, world, campaign, refunded):
    from market.tasks import RUN_EXPORT, celery_for

    organizer = client_as("organizer")
    job_id = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    first = _download(organizer, job_id).data
    assert celery_for(app).tasks[RUN_EXPORT].delay(job_id).get() == "skipped"
    assert _download(organizer, job_id).data == first
    with app.app_context():
        assert db.session.get(ExportJob, job_id).attempts == 1


def test_each_organizer_keeps_their_newest_exports(
    app, client_as, world, campaign, refunded, monkeypatch
):
    monkeypatch.setitem(app.config, "EXPORT_KEEP_PER_USER", 2)
    organizer = client_as("organizer")
    root = Path(app.config["PRIVATE_UPLOAD_DIR"])
    ids, files = [], []
    for query in ("", f"?town={world.town}", f"?town={world.other_town}"):
        ids.append(_job_id(_start(organizer, campaign.id, "ledger_csv", query)))
        with app.app_context():
            files.append(root / db.session.get(ExportJob, ids[-1]).file_path)
    with app.app_context():
        kept = db.session.scalars(select(ExportJob.id).order_by(ExportJob.id)).all()
    assert kept == ids[1:]
    assert organizer.get(f"/exports/{ids[0]}").status_code == 404
    assert [file.is_file() for file in files] == [False, True, True]


# -- the old links ------------------------------------------------------------------------------
def test_the_old_links_offer_the_background_export_past_a_requests_size(
    app, client_as, world, campaign, refunded, monkeypatch
):
    monkeypatch.setitem(app.config, "EXPORT_SYNC_MAX_ROWS", 1)  # the town has 2 entries
    organizer = client_as("organizer")
    for old, kind in (("export.xlsx", "campaign_xlsx"), ("ledger.csv", "ledger_csv")):
        response = organizer.get(f"/admin/campaigns/{campaign.id}/{old}?town={world.town}")
        assert response.status_code == 200 and response.mimetype == "text/html"
        page = response.get_data(as_text=True)
        assert "在后台导出" in page
        assert f"/admin/campaigns/{campaign.id}/exports/{kind}?town={world.town}" in page
    # The small tables still download at once.
    assert organizer.get(f"/admin/campaigns/{campaign.id}/units.csv").mimetype == "text/csv"
    monkeypatch.setitem(app.config, "EXPORT_SYNC_MAX_ROWS", 4)
    assert organizer.get(f"/admin/campaigns/{campaign.id}/ledger.csv").mimetype == "text/csv"


# -- a real worker ------------------------------------------------------------------------------
@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis for a real worker")
def test_a_real_worker_on_redis_writes_the_export(
    app, client_as, world, campaign, refunded, monkeypatch, tmp_path
):
    from market.tasks import make_celery
    from tests.test_celery import _delete_queue, celery_worker

    queue = f"market-test-{uuid.uuid4().hex}"
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setitem(app.config, "CELERY_QUEUE", queue)
    monkeypatch.setitem(app.extensions, "celery", None)
    celery_app = make_celery(app)
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "UPLOAD_DIR": app.config["UPLOAD_DIR"],
        "PRIVATE_UPLOAD_DIR": app.config["PRIVATE_UPLOAD_DIR"],
        "CELERY_QUEUE": queue,
    }
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "worker.log"
    organizer = client_as("organizer")
    try:
        with celery_worker(queue, env, log_path) as worker:
            job_id = _job_id(_start(organizer, campaign.id, "ledger_csv"))
            status = _status(organizer, job_id)
            for _attempt in range(600):  # the worker's own pace; fails early if it died
                if status["status"] in ("done", "failed") or worker.poll() is not None:
                    break
                worker_wait(worker)
                status = _status(organizer, job_id)
            assert status["status"] == "done", log_path.read_text()[-3000:]
    finally:
        _delete_queue(celery_app, queue)
        celery_app.close()
    rows = _csv_rows(_download(organizer, job_id).data)
    assert [int(row[0]) for row in rows[1:]] == _entry_ids(app)
    assert "market.run_export" in log_path.read_text()


def worker_wait(worker, seconds: float = 0.1) -> None:
    """Give the worker a moment (waiting on its process, which returns early if it exits)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=seconds)


def test_asking_again_for_an_export_whose_worker_was_lost_starts_a_new_one(
    app, client_as, world, campaign, refunded, no_worker
):
    organizer = client_as("organizer")
    lost = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    assert _job_id(_start(organizer, campaign.id, "ledger_csv")) == lost  # a double click
    _lost(app, lost, minutes=60)
    again = _job_id(_start(organizer, campaign.id, "ledger_csv"))
    assert again != lost
    with app.app_context():
        old = db.session.get(ExportJob, lost)
        assert (old.status, old.active_key) == (ExportStatus.FAILED, None)
        assert db.session.get(ExportJob, again).status == ExportStatus.QUEUED
