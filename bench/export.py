"""Whole-ledger exports at 1M entries on PostgreSQL: rows/s and peak memory of the background
CSV and XLSX jobs, and xlsxwriter's constant-memory mode against openpyxl's write-only mode.

    .venv/bin/python bench/export.py [--rows 1000000] [--runs job-csv,job-xlsx,openpyxl]
                                     [--database-url postgresql+psycopg://postgres@127.0.0.1:5432]

A throwaway database `market_bench_<hex>` is made the way bench/dashboard.py makes it (its helpers:
the demo directory and catalog, a campaign of 365 days, --rows ledger entries generated with a
fixed seed and written with COPY, the rollups rebuilt) and dropped on every exit path. Each run
then happens in a child process of its own, so that its peak resident memory (getrusage maxrss)
is its own:

- job-csv, job-xlsx: the organizer's path through the pages (Flask's test client, signed in with
  a real session, CSRF on): the old GET link (which offers the background export at this size),
  the dashboard, its start button's form POSTed with its tokens, the job page, the JSON status
  polled every POLL_SECONDS while the job runs as in the embedded shop (in a thread of the same
  process), the job page again and the download. Every request is timed and the longest printed:
  none may come near gunicorn's 30 s. rows/s is the job's own (started to finished, from its
  row), with the file written into PRIVATE_UPLOAD_DIR.
- openpyxl, xlsxwriter: `write_workbook` called directly with that engine (the same sheets, the
  same keyset batches of the ledger), for the comparison of the two writers.

Every run prints rows, seconds, rows/s, the child's resident memory just before the export and
the highest seen during it (sampled every 50 ms from /proc; the difference is the export's own),
and the file's size; finally the ratios to the first run. It never fails because something is
slow.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dashboard import (  # noqa: E402  (bench/dashboard.py: the same generated ledger)
    DEFAULT_SERVER,
    Generator,
    World,
    add_entries,
    fresh_database,
    prepare,
    rebuild_rollups,
)
from sqlalchemy import select  # noqa: E402

from market import clock, create_app  # noqa: E402
from market.campaign.read.filters import Filters  # noqa: E402
from market.campaign.read.ledger_lines import ledger_extent  # noqa: E402
from market.extensions import db  # noqa: E402

RUNS = ("job-csv", "job-xlsx", "openpyxl", "xlsxwriter")
DEFAULT_RUNS = "job-csv,job-xlsx,openpyxl"
POLL_SECONDS = 0.5


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    """The process's resident memory now (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    """The highest resident memory seen, every 50 ms, while the export runs (maxrss alone would
    also count whatever the app peaked at before it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.before = _rss_mb()
        self.peak = self.before
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.peak = max(self.peak, _rss_mb())


def _app(url: str, tmp: str):
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "UPLOAD_DIR": str(Path(tmp) / "uploads"),
            "PRIVATE_UPLOAD_DIR": str(Path(tmp) / "private"),
            "SECRET_KEY": "bench",
            "CELERY_TASK_ALWAYS_EAGER": True,
            "EXPORTS_IN_THREAD": True,  # as in the embedded shop: the request returns at once
        }
    )


def _organizer_id() -> int:
    from market.accounts.models import User

    user = db.session.scalar(select(User).where(User.email == "bench.organizer@example.com"))
    if user is None:
        user = User(name="压测组织", email="bench.organizer@example.com", is_organizer=True)
        user.set_password("bench-password-1")
        db.session.add(user)
        db.session.commit()
    return user.id


def _signed_in(app, user_id: int):
    """A test client with the organizer's real session (as tests/factories.py makes one)."""
    from market.accounts.sessions import open_session

    client = app.test_client()
    with app.app_context():
        cookie_id = open_session(user_id)
    with client.session_transaction() as session:
        session["_user_id"] = cookie_id
        session["_fresh"] = True
    return client


class Timed:
    """Every request the organizer makes, timed (in-process, no network): the longest one is
    what the 30 s limit is about."""

    def __init__(self, client):
        self.client, self.longest, self.count = client, ("", 0.0), 0
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, method: str, url: str, **kwargs):
        started = time.perf_counter()
        response = self.client.open(url, method=method, **kwargs)
        if not response.direct_passthrough:  # a page is read whole; a file is sent later
            response.get_data()
        took = time.perf_counter() - started
        self.count += 1
        self.seconds[name] = max(self.seconds.get(name, 0.0), took)
        if took > self.longest[1]:
            self.longest = (name, took)
        return response


def _form(page: str, form_id: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of a form on a page (the start buttons' forms)."""
    found = re.search(
        rf'<form method="post" id="{form_id}"[^>]*action="([^"]+)">(.*?)</form>', page
    )
    if found is None:
        raise SystemExit(f"no form {form_id} on the dashboard")
    fields = re.findall(r'name="([a-z_]+)" value="([^"]*)"', found.group(2))
    return html.unescape(found.group(1)), {name: html.unescape(v) for name, v in fields}


def _job_run(app, kind_name: str) -> dict:
    """The organizer's path, page by page: the dashboard, the start button (POST), the job
    page, its status polled every POLL_SECONDS while the job runs in its thread, the download;
    and the old GET link, which offers the background export at this size."""
    from market.campaign.models import Campaign
    from market.exports.models import ExportJob

    xlsx = kind_name == "job-xlsx"
    with app.app_context():
        user_id = _organizer_id()
        campaign_id = db.session.scalar(select(Campaign.id))
    client = _signed_in(app, user_id)
    timed = Timed(client)
    old = "export.xlsx" if xlsx else "ledger.csv"
    # Past EXPORT_SYNC_MAX_ROWS the old link answers with a page offering the background export;
    # below it, it still downloads at once (and that download is then timed).
    timed("old GET link", "GET", f"/admin/campaigns/{campaign_id}/{old}")
    dashboard = timed("dashboard", "GET", f"/admin/campaigns/{campaign_id}/dashboard")
    action, fields = _form(
        dashboard.get_data(as_text=True), "export-xlsx-form" if xlsx else "export-ledger-csv-form"
    )
    sampler = RssSampler()
    sampler.start()
    started = timed("start (POST)", "POST", action, data=fields)
    assert started.status_code == 303, started.status_code
    job_url = started.headers["Location"]
    job_id = int(job_url.rsplit("/", 1)[1])
    timed("job page", "GET", job_url)
    polls = 0
    while True:
        time.sleep(POLL_SECONDS)
        status = timed("status (JSON)", "GET", f"{job_url}/status").get_json()
        polls += 1
        if status["status"] in ("done", "failed"):
            break
    timed("job page", "GET", job_url)
    sampler.stop()  # the export's memory; the test client may hold the download in memory
    download = timed("download", "GET", f"{job_url}/download")
    size = sum(len(chunk) for chunk in download.response)
    download.close()
    with app.app_context():
        job = db.session.get(ExportJob, job_id)
        seconds = (job.finished_at - job.started_at).total_seconds()
        result = {
            "status": job.status.value,
            "rows": job.rows_total,
            "seconds": seconds,
            "bytes": job.size_bytes,
            "downloaded": size,
            "requests": timed.count,
            "polls": polls,
            "longest": timed.longest,
            "request_ms": {name: took * 1000 for name, took in timed.seconds.items()},
        }
    result.update(rss_before_mb=sampler.before, rss_peak_mb=sampler.peak, maxrss_mb=_max_rss_mb())
    return result


def _direct_run(app, engine: str, tmp: str) -> dict:
    from market.campaign import exports
    from market.campaign.models import Campaign

    target = Path(tmp) / f"direct-{engine}.xlsx"
    with app.app_context():
        campaign = db.session.scalar(select(Campaign))
        filters = Filters(campaign.id)
        rows, last = ledger_extent(filters)
        today = clock.today()
        sampler = RssSampler()
        sampler.start()
        started = time.perf_counter()
        exports.write_workbook(
            str(target),
            campaign,
            filters,
            today,
            today,
            engine=engine,
            upto_id=last,
            on_batch=lambda _done: None,
            batch=5000,
        )
        seconds = time.perf_counter() - started
    sampler.stop()
    return {
        "status": "done",
        "rows": rows,
        "seconds": seconds,
        "bytes": target.stat().st_size,
        "rss_before_mb": sampler.before,
        "rss_peak_mb": sampler.peak,
        "maxrss_mb": _max_rss_mb(),
    }


def child(run: str, url: str, tmp: str) -> int:
    app = _app(url, tmp)
    try:
        result = _job_run(app, run) if run.startswith("job-") else _direct_run(app, run, tmp)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    print(json.dumps(result))
    return 0


def _in_child(run: str, url: str, tmp: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", run, "--child-url", url, "--child-tmp", tmp],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"{run} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated, of {RUNS}")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.child_url, args.child_tmp)
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    if unknown := set(runs) - set(RUNS):
        parser.error(f"unknown runs: {sorted(unknown)}")
    if not args.database_url.startswith(("postgres", "postgresql")):
        parser.error("the export bench runs on PostgreSQL")

    with fresh_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        app = _app(url, tmp)
        try:
            prepare(app)
            with app.app_context():
                _organizer_id()
            with app.app_context():
                generator = Generator(World(clock.today()))
            load = add_entries(app, generator, args.rows)
            *counts, rebuild = rebuild_rollups(app)  # (fine, dashboard rollup rows, seconds)
            rollups = sum(counts)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        print(
            f"{args.rows:,} ledger entries: generated+COPY {load:.1f} s, {rollups:,} rollup rows "
            f"in {rebuild:.1f} s; each run in a child process\n"
        )
        print(
            f"{'run':<11} {'rows':>10} {'seconds':>8} {'rows/s':>8} {'RSS before':>10} "
            f"{'peak':>7} {'file':>9}"
        )
        results = {}
        for run in runs:
            results[run] = result = _in_child(run, url, tmp)
            rate = result["rows"] / result["seconds"] if result["seconds"] else 0.0
            extra = ""
            if "longest" in result:
                name, took = result["longest"]
                extra = f"  longest of {result['requests']} requests: {name} {took * 1000:.0f} ms"
            print(
                f"{run:<11} {result['rows']:>10,} {result['seconds']:>8.1f} {rate:>8,.0f} "
                f"{result['rss_before_mb']:>8.0f}MB {result['rss_peak_mb']:>5.0f}MB "
                f"{result['bytes'] / 1e6:>7.1f}MB{extra}"
                + ("" if result["status"] == "done" else f"  [{result['status']}]")
            )
        for run in runs:
            if "request_ms" in results[run]:
                slowest = ", ".join(
                    f"{name} {ms:.0f} ms" for name, ms in results[run]["request_ms"].items()
                )
                print(f"{run} requests (slowest of each): {slowest}")
        first = runs[0]
        if len(runs) > 1:
            print(f"\nseconds, relative to {first}:")
            for run in runs[1:]:
                print(f"  {run:<11} {results[run]['seconds'] / results[first]['seconds']:6.2f}x")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench-export"
    sys.exit(main())
