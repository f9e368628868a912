"""Private data stays private (issue 11, point 8): bank slips, refund slips and payout proofs are
served only through views that check who may see them, never cached and never at /media (not
even the ones stored there before); every page a signed-in person sees is `no-store`; chart
tooltips escape names; the admin user search takes % and _ literally; no response names the
server software."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import select

from market.extensions import db
from market.orders.models import Order
from market.payments.models import Payment, Refund
from market.settlements.models import Payout
from tests import factories
from tests.campaign.conftest import campaign, sales  # noqa: F401  (fixtures)
from tests.e2e.conftest import REPO_ROOT
from tests.orders.conftest import buy, sku_of
from tests.procurement.test_purchases import approved, orders_of
from tests.settlements.test_pages import (
    delivered_order,
    issue,
    pending_refund,
    shanghai_today,
    statement_of,
)

PRIVATE = "private, no-store"


def slip_upload() -> tuple[io.BytesIO, str]:
    return io.BytesIO(factories.image_bytes()), "回单.jpg"


def confirm_with_slip(finance, number: str):
    response = finance.post(
        f"/orders/{number}/transfer-received",
        data={
            "reference": f"IN-{number}",
            "transfer_date": shanghai_today().isoformat(),
            "proof": slip_upload(),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    return response


def paid_with_slip(app, client_as, world) -> tuple[str, Payment]:
    """The buyer orders honey (the world's co-op), chooses bank transfer, and finance confirms
    the money with a photo of the bank slip."""
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{number}/pay/offline")
    confirm_with_slip(client_as("finance"), number)
    with app.app_context():
        payment = db.session.scalar(
            select(Payment).join(Order, Order.id == Payment.order_id).where(Order.number == number)
        )
        db.session.expunge(payment)
    return number, payment


def link_in(page: str, endpoint_path: str) -> str:
    match = re.search(rf'href="({re.escape(endpoint_path)}[^"]*)"', page)
    assert match, f"no link to {endpoint_path}"
    return match.group(1)


def assert_served_privately(response) -> None:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "image/jpeg" and response.data.startswith(b"\xff\xd8")
    assert response.headers["Cache-Control"] == PRIVATE


# -- bank slips ------------------------------------------------------------------------------------
def test_a_transfer_slip_is_served_only_to_those_who_may_see_the_order(
    app, client, client_as, world
):
    number, payment = paid_with_slip(app, client_as, world)
    path = payment.proof_path
    assert path.startswith("transfers/")
    assert (Path(app.config["PRIVATE_UPLOAD_DIR"]) / path).is_file()
    assert not (Path(app.config["UPLOAD_DIR"]) / path).exists()

    # Not at the public address, for anyone.
    for who in (client, client_as("buyer"), client_as("finance")):
        assert who.get(f"/media/{path}").status_code == 404

    # The buyer finds it on the order page.
    buyer = client_as("buyer")
    url = link_in(buyer.get(f"/orders/{number}").get_data(as_text=True), "/payments/")
    assert url == f"/payments/{payment.id}/slip"
    for role in ("buyer", "finance", "organizer", "admin", "coop_manager"):
        assert_served_privately(client_as(role).get(url))

    # Another buyer, another co-op, another unit's people: as if there were no such slip.
    for role in ("employee", "other_coop_manager", "coordinator", "approver"):
        assert client_as(role).get(url).status_code == 404, role
    assert client_as("employee").get(f"/payments/{payment.id + 1}/slip").status_code == 404
    # Anonymous visitors are sent to sign in, like on every private page; no file.
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")


def test_a_unit_purchase_slip_is_seen_by_that_unit_only(app, client_as, world):
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    client_as("coordinator").post(f"/unit/purchases/{purchase_id}/transfer")
    order = orders_of(app, purchase_id)[0]
    confirm_with_slip(client_as("finance"), order.number)
    with app.app_context():
        payment_id = db.session.scalar(select(Payment.id).where(Payment.order_id == order.id))
    url = f"/payments/{payment_id}/slip"
    for role in ("coordinator", "approver", "finance"):
        assert_served_privately(client_as(role).get(url))
    for role in ("other_coordinator", "employee", "buyer", "other_coop_manager"):
        assert client_as(role).get(url).status_code == 404, role


def test_slips_stored_under_media_before_are_refused_there_and_served_privately(
    app, client, client_as, world
):
    """Slips uploaded before they became private lie under UPLOAD_DIR/transfers: the public
    route refuses them however the path is spelt, the private view still finds them."""
    _number, payment = paid_with_slip(app, client_as, world)
    public = Path(app.config["UPLOAD_DIR"])
    (public / "transfers").mkdir(exist_ok=True)
    (public / "transfers" / "legacy.jpg").write_bytes(factories.image_bytes())
    (public / "transfers" / "legacy.thumb.jpg").write_bytes(factories.image_bytes())
    (public / "villages").mkdir(exist_ok=True)
    (public / "villages" / "photo.jpg").write_bytes(factories.image_bytes())
    with app.app_context():
        db.session.get(Payment, payment.id).proof_path = "transfers/legacy.jpg"
        db.session.commit()

    buyer = client_as("buyer")
    for spelling in (
        "transfers/legacy.jpg",
        "transfers/legacy.thumb.jpg",
        "./transfers/legacy.jpg",
        "villages/../transfers/legacy.jpg",
        "villages/%2e%2e/transfers/legacy.jpg",
        "Transfers/legacy.jpg",
        "refunds/anything.jpg",
        "payouts/anything.jpg",
    ):
        assert client.get(f"/media/{spelling}").status_code == 404, spelling
        assert buyer.get(f"/media/{spelling}").status_code == 404, spelling
    # Public pictures are still public, with their long caching.
    photo = client.get("/media/villages/photo.jpg")
    assert photo.status_code == 200 and "max-age=2592000" in photo.headers["Cache-Control"]

    assert_served_privately(buyer.get(f"/payments/{payment.id}/slip"))
    assert client_as("employee").get(f"/payments/{payment.id}/slip").status_code == 404


def test_a_refund_slip_is_shown_to_the_buyer_and_finance_only(app, client, client_as, world):
    refund_id = pending_refund(app, client_as, world)
    finance = client_as("finance")
    response = finance.post(
        f"/finance/refunds/{refund_id}/send",
        data={
            "reference": "OUT-1",
            "sent_date": shanghai_today().isoformat(),
            "proof": slip_upload(),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context():
        refund = db.session.get(Refund, refund_id)
        path, number = refund.proof_path, refund.payment.order.number
    assert path.startswith("refunds/") and client.get(f"/media/{path}").status_code == 404

    url = f"/refunds/{refund_id}/slip"
    sent = finance.get("/finance/refunds?status=sent").get_data(as_text=True)
    assert link_in(sent, "/refunds/") == url
    buyer = client_as("buyer")
    assert link_in(buyer.get(f"/orders/{number}").get_data(as_text=True), "/refunds/") == url
    for role in ("buyer", "finance", "coop_manager"):
        assert_served_privately(client_as(role).get(url))
    for role in ("employee", "other_coop_manager"):
        assert client_as(role).get(url).status_code == 404, role


# -- payout proofs ---------------------------------------------------------------------------------
def test_a_payout_proof_is_seen_by_its_co_op_and_finance_only(app, client, client_as, world):
    delivered_order(app, client_as, world.honey_product)
    finance = client_as("finance")
    issue(finance, shanghai_today())
    statement = statement_of(app, world.coop)
    manager = client_as("coop_manager")
    assert manager.post(f"/coop/settlements/{statement.id}/confirm").status_code in (302, 303)
    response = finance.post(
        f"/finance/statements/{statement.id}/pay",
        data={
            "reference": "PAY-1",
            "paid_on": shanghai_today().isoformat(),
            "proof": slip_upload(),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context():
        path = db.session.scalar(select(Payout.proof_path))
    assert path.startswith("payouts/")
    assert (Path(app.config["PRIVATE_UPLOAD_DIR"]) / path).is_file()
    for who in (client, manager, finance):
        assert who.get(f"/media/{path}").status_code == 404

    url = f"/settlements/{statement.id}/payout-proof"
    statement_page = manager.get(f"/settlements/{statement.id}").get_data(as_text=True)
    assert f'href="{url}"' in statement_page
    assert url in finance.get("/finance/payouts").get_data(as_text=True)
    assert url in manager.get("/coop/settlements").get_data(as_text=True)
    for role in ("coop_manager", "finance", "organizer"):
        assert_served_privately(client_as(role).get(url))
    assert client_as("other_coop_manager").get(url).status_code == 404
    assert client_as("buyer").get(url).status_code == 403  # as on the statement page itself


# -- no-store for signed-in pages ------------------------------------------------------------------
def cache_control(response) -> str:
    return response.headers.get("Cache-Control", "")


def test_signed_in_pages_are_never_stored_public_ones_keep_their_caching(
    app, client, client_as, world
):
    product = f"/products/{world.honey_product}"
    assert "no-store" not in cache_control(client.get(product))
    assert "no-store" not in cache_control(client.get("/"))

    buyer = client_as("buyer")
    for page in (product, "/", "/account", "/orders", "/cart", "/no-such-page"):
        response = buyer.get(page)
        assert cache_control(response) == "no-store", (page, response.status_code)
    assert cache_control(client_as("finance").get("/finance")) == "no-store"
    # Static files are the same for everyone: their own caching stays.
    static = buyer.get("/static/js/charts.js")
    assert static.status_code == 200 and "no-store" not in cache_control(static)
    # The app names no server software of its own.
    assert "Server" not in buyer.get(product).headers


# -- LIKE wildcards --------------------------------------------------------------------------------
def test_the_admin_user_search_takes_percent_and_underscore_literally(app, client_as, world):
    with app.app_context():
        factories.make_user("满100%返现", "percent@example.com")
        factories.make_user("下划线_用户", "underscore@example.com")
        factories.make_user("反斜杠\\用户", "backslash@example.com")
        factories.make_user("平常用户", "plain@example.com")
        db.session.commit()
    organizer = client_as("organizer")

    def found(q: str) -> set[str]:
        page = organizer.get("/admin/users", query_string={"q": q}).get_data(as_text=True)
        names = ("满100%返现", "下划线_用户", "反斜杠\\用户", "平常用户", "周买家")
        return {name for name in names if name in page}

    assert found("%") == {"满100%返现"}
    assert found("_") == {"下划线_用户"}
    assert found("\\") == {"反斜杠\\用户"}
    assert found("0%返") == {"满100%返现"}
    assert found("用户") == {"下划线_用户", "反斜杠\\用户", "平常用户"}


# -- the Server header under gunicorn --------------------------------------------------------------
def test_gunicorn_with_the_shipped_config_names_no_server_software(tmp_path):
    """gunicorn started as in production (`-c gunicorn.conf.py`) on a loopback socket this test
    opened and hands over (fd://): no free-port race, and a request waits in the socket's queue
    until the worker is up, so no polling."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/gunicorn.db",
        "SECRET_KEY": "gunicorn-test",
        "GUNICORN_BIND": f"fd://{listener.fileno()}",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_ACCESS_LOG": "",
    }
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        cwd=REPO_ROOT,
        env=env,
        pass_fds=[listener.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    listener.close()  # gunicorn holds its own copy
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as reply:
            status, servers = reply.status, reply.headers.get_all("Server") or []
            body = reply.read()
    finally:
        server.terminate()
        try:
            _, errors = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            _, errors = server.communicate(timeout=5)
    assert status == 200 and b"ok" in body, errors.decode()[-2000:]
    assert servers == ["market"], errors.decode()[-2000:]
