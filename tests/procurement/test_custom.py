"""产品定制 through the real pages: a unit asks, co-ops that may see the request quote, the unit
accepts one quote and an order at the quoted price follows; bad input changes nothing."""

from __future__ import annotations

import io
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from market.extensions import db
from market.orders.models import Order, OrderMode, OrderStatus
from market.procurement.models import (
    CustomRequest,
    Quote,
    QuoteStatus,
    RequestStatus,
)
from tests import factories


def request_form(logo: bytes | None = None, **overrides) -> dict:
    data = {
        "title": "中秋单位定制礼盒",
        "description": "蜂蜜一瓶加藿香一包，印单位标志",
        "quantity": "200",
        "budget": "120",
        "needed_by": (date.today() + timedelta(days=30)).isoformat(),
        "card_text": "感谢您对结对帮扶的支持",
        "packaging": "牛皮纸礼盒",
        "recipient": "李联络",
        "phone": "13800000001",
        "address": "高州市潘州街道府前路 1 号 工会",
    }
    if logo is not None:
        data["logo"] = (io.BytesIO(logo), "logo.png")
    data.update(overrides)
    return data


def post_request(client, logo: bytes | None = None, **overrides):
    return client.post(
        "/unit/custom/new",
        data=request_form(logo, **overrides),
        content_type="multipart/form-data",
    )


def new_request(client_as, logo: bytes | None = None) -> int:
    response = post_request(client_as("coordinator"), logo)
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def quote_form(coop_id: int, price: str = "98", days: str = "15", **overrides) -> dict:
    data = {
        "coop_id": str(coop_id),
        "unit_price": price,
        "lead_time_days": days,
        "note": "可做烫金标志",
    }
    data.update(overrides)
    return data


def post_quote(client, request_id: int, data: dict):
    return client.post(
        f"/coop/custom/{request_id}/quote", data=data, content_type="multipart/form-data"
    )


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def quote_id(app, request_id: int, coop_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(Quote.id).where(Quote.request_id == request_id, Quote.coop_id == coop_id)
        )


# -- the request ----------------------------------------------------------------------------------
def test_a_coordinator_asks_for_a_custom_product_with_a_logo(app, client_as, world):
    request_id = new_request(client_as, factories.image_bytes("PNG"))
    with app.app_context():
        custom = db.session.get(CustomRequest, request_id)
        assert (custom.title, custom.quantity, custom.budget_fen) == (
            "中秋单位定制礼盒",
            200,
            12000,
        )
        assert custom.unit_id == world.unit and custom.status == RequestStatus.OPEN
        assert custom.logo_path.startswith("custom/")
        logo_path = custom.logo_path
    page = client_as("coordinator").get(f"/unit/custom/{request_id}").get_data(as_text=True)
    assert "中秋单位定制礼盒" in page and f"/media/{logo_path}" in page
    assert "还没有合作社报价" in page
    listing = client_as("coordinator").get("/unit/custom").get_data(as_text=True)
    assert "中秋单位定制礼盒" in listing
    # Another unit's coordinator sees nothing of it.
    other = client_as("other_coordinator")
    assert other.get(f"/unit/custom/{request_id}").status_code == 404
    assert "中秋单位定制礼盒" not in other.get("/unit/custom").get_data(as_text=True)
    assert other.post(f"/unit/custom/{request_id}/open").status_code == 404
    assert client_as("employee").get("/unit/custom").status_code == 403


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"budget": "-5"}, "请输入正确的金额"),
        ({"budget": "0"}, "金额必须大于 0"),
        ({"quantity": "0"}, "数值大小必须介于 1 到 1000000 之间"),
        ({"title": ""}, "该字段是必填字段"),
        ({"needed_by": date.today().isoformat()}, "需要日期必须晚于今天"),
        ({"address": ""}, "该字段是必填字段"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_created(app, client_as, world, overrides, message):
    response = post_request(client_as("coordinator"), **overrides)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert count(app, CustomRequest) == 0


def stored_logos(app) -> set[str]:
    folder = Path(app.config["UPLOAD_DIR"]) / "custom"
    return {path.name for path in folder.iterdir()} if folder.exists() else set()


def test_a_logo_that_is_not_an_image_is_refused_and_nothing_is_created(app, client_as, world):
    before = stored_logos(app)
    response = post_request(client_as("coordinator"), b"<svg onload=alert(1)></svg>")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "文件不是有效的图片" in page and 'id="logo"' in page
    assert count(app, CustomRequest) == 0
    assert stored_logos(app) == before


# -- quoting --------------------------------------------------------------------------------------
def test_paired_coops_quote_first_and_others_once_opened_to_all(app, client_as, world):
    request_id = new_request(client_as)
    paired, other = client_as("coop_manager"), client_as("other_coop_manager")
    page = paired.get("/coop/custom").get_data(as_text=True)
    assert "中秋单位定制礼盒" in page and 'text-bg-success">结对单位' in page
    assert "中秋单位定制礼盒" not in other.get("/coop/custom").get_data(as_text=True)
    # A co-op that may not see the request cannot quote on it either.
    assert post_quote(other, request_id, quote_form(world.other_coop)).status_code == 404
    # Nor quote in the name of a co-op it does not manage.
    assert post_quote(other, request_id, quote_form(world.coop)).status_code == 303
    assert count(app, Quote) == 0

    response = post_quote(
        paired,
        request_id,
        quote_form(world.coop, sample=(io.BytesIO(factories.image_bytes()), "sample.jpg")),
    )
    assert response.status_code == 303
    page = paired.get("/coop/custom").get_data(as_text=True)
    assert "古丁南药合作社 已报价：¥98.00，15 天交货" in page
    assert 'name="unit_price"' not in page  # one quote per co-op

    client_as("coordinator").post(f"/unit/custom/{request_id}/open")
    page = other.get("/coop/custom").get_data(as_text=True)
    assert "中秋单位定制礼盒" in page and 'text-bg-success">结对单位' not in page
    assert (
        post_quote(other, request_id, quote_form(world.other_coop, "110", "20")).status_code == 303
    )
    assert count(app, Quote) == 2
    page = client_as("coordinator").get(f"/unit/custom/{request_id}").get_data(as_text=True)
    assert "¥98.00" in page and "¥110.00" in page and "¥19,600.00" in page
    assert "/media/quotes/" in page  # the sample photo


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"unit_price": "-1"}, "请输入正确的金额"),
        ({"unit_price": "0"}, "金额必须大于 0"),
        ({"lead_time_days": "0"}, "交货天数应在 1 到 365 之间"),
        ({"sample": b"plain text"}, "文件不是有效的图片"),
    ],
)
def test_bad_quotes_are_refused(app, client_as, world, overrides, message):
    request_id = new_request(client_as)
    manager = client_as("coop_manager")
    if "sample" in overrides:  # a fresh file per run: a stream is read once
        overrides = {"sample": (io.BytesIO(overrides["sample"]), "sample.jpg")}
    response = post_quote(manager, request_id, quote_form(world.coop, **overrides))
    assert response.status_code == 303
    assert message in manager.get("/coop/custom").get_data(as_text=True)
    assert count(app, Quote) == 0


def test_a_quote_on_a_closed_request_is_refused(app, client_as, world):
    request_id = new_request(client_as)
    coordinator = client_as("coordinator")
    coordinator.post(f"/unit/custom/{request_id}/open")
    other = client_as("other_coop_manager")
    post_quote(other, request_id, quote_form(world.other_coop))
    coordinator.post(
        f"/unit/custom/{request_id}/quotes/{quote_id(app, request_id, world.other_coop)}/accept"
    )

    manager = client_as("coop_manager")
    assert "中秋单位定制礼盒" not in manager.get("/coop/custom").get_data(as_text=True)
    response = post_quote(manager, request_id, quote_form(world.coop))
    assert response.status_code == 303
    assert "该需求已结束，不能再报价" in manager.get("/coop/custom").get_data(as_text=True)
    assert count(app, Quote) == 1
    # Opening a closed request is refused too.
    response = coordinator.post(f"/unit/custom/{request_id}/open", follow_redirects=True)
    assert "该需求已结束" in response.get_data(as_text=True)


# -- accepting ------------------------------------------------------------------------------------
def test_accepting_a_quote_declines_the_others_and_orders_at_the_quoted_price(
    app, client_as, world
):
    request_id = new_request(client_as)
    coordinator = client_as("coordinator")
    coordinator.post(f"/unit/custom/{request_id}/open")
    paired, other = client_as("coop_manager"), client_as("other_coop_manager")
    post_quote(paired, request_id, quote_form(world.coop, "98.50", "15"))
    post_quote(other, request_id, quote_form(world.other_coop, "90", "25"))
    chosen = quote_id(app, request_id, world.coop)

    response = coordinator.post(
        f"/unit/custom/{request_id}/quotes/{chosen}/accept", follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert "已选定报价并生成订单" in page
    with app.app_context():
        custom = db.session.get(CustomRequest, request_id)
        assert custom.status == RequestStatus.ACCEPTED
        assert {q.coop_id: q.status for q in custom.quotes} == {
            world.coop: QuoteStatus.ACCEPTED,
            world.other_coop: QuoteStatus.DECLINED,
        }
        order = custom.order
        assert order.mode == OrderMode.CUSTOM and order.unit_id == world.unit
        assert order.total_fen == 9850 * 200 and order.status == OrderStatus.PENDING_PAYMENT
        assert [(line.coop_id, line.quantity, line.unit_price_fen) for line in order.lines] == [
            (world.coop, 200, 9850)
        ]
        number = order.number
    assert f"/orders/{number}/pay" in page and "¥19,700.00" in page
    assert "选定此报价" not in page
    assert coordinator.get(f"/orders/{number}/pay").status_code == 200

    # The co-op finds it in its normal inbox; the declined co-op does not.
    assert number in paired.get("/coop/orders?tab=awaiting").get_data(as_text=True)
    assert number not in other.get("/coop/orders?tab=awaiting").get_data(as_text=True)
    decided = paired.get("/coop/custom").get_data(as_text=True)
    assert "已选中" in decided
    assert "未选中" in other.get("/coop/custom").get_data(as_text=True)
    # Once the unit's transfer arrives it is the co-op's to ship.
    coordinator.post(f"/orders/{number}/pay/offline")
    client_as("finance").post(
        f"/orders/{number}/transfer-received",
        data={"reference": "CUSTOM-1", "transfer_date": date.today().isoformat()},
    )
    inbox = paired.get("/coop/orders?tab=to_ship").get_data(as_text=True)
    assert number in inbox and "产品定制" in inbox
    # The hidden product carrying the order is not in the shop.
    assert "定制：中秋单位定制礼盒" not in client_as("buyer").get("/products?q=定制").get_data(
        as_text=True
    )


def test_accepting_two_quotes_at_once_accepts_one(app, client_as, world):
    request_id = new_request(client_as)
    client_as("coordinator").post(f"/unit/custom/{request_id}/open")
    post_quote(client_as("coop_manager"), request_id, quote_form(world.coop))
    post_quote(client_as("other_coop_manager"), request_id, quote_form(world.other_coop, "95"))
    quotes = [quote_id(app, request_id, world.coop), quote_id(app, request_id, world.other_coop)]
    clients = [client_as("coordinator"), client_as("coordinator")]
    start = threading.Barrier(2)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def accept(client, chosen: int) -> None:
        start.wait()
        response = client.post(
            f"/unit/custom/{request_id}/quotes/{chosen}/accept", follow_redirects=True
        )
        with lock:
            results.append((response.status_code, response.get_data(as_text=True)))

    threads = [
        threading.Thread(target=accept, args=(client, chosen))
        for client, chosen in zip(clients, quotes, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert [status for status, _page in results] == [200, 200]
    pages = [page for _status, page in results]
    assert sum("已选定报价并生成订单" in page for page in pages) == 1
    assert sum("该需求已选定报价" in page for page in pages) == 1
    with app.app_context():
        statuses = sorted(
            q.status.value
            for q in db.session.scalars(select(Quote).where(Quote.request_id == request_id))
        )
        assert statuses == ["accepted", "declined"]
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_only_the_units_coordinator_accepts(app, client_as, world):
    request_id = new_request(client_as)
    post_quote(client_as("coop_manager"), request_id, quote_form(world.coop))
    url = f"/unit/custom/{request_id}/quotes/{quote_id(app, request_id, world.coop)}/accept"
    assert client_as("other_coordinator").post(url).status_code == 404
    assert client_as("approver").post(url).status_code == 403
    assert client_as("coop_manager").post(url).status_code == 403
    assert count(app, Order) == 0


def test_the_custom_orders_delivery_note_shows_the_address_the_unit_gave(app, client_as, world):
    """The request carries a delivery address; the co-op's 送货单 prints it, not a placeholder."""
    with app.app_context():
        from market.directory.models import Unit

        db.session.get(Unit, world.unit).address = "高州市（详细地址待补充）"
        db.session.commit()
    coordinator = client_as("coordinator")
    form = coordinator.get("/unit/custom/new").get_data(as_text=True)
    assert 'name="address"' in form and "收货信息" in form
    response = post_request(coordinator, address="高州市府前路 9 号 工会办公室", recipient="王收货")
    request_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    detail = coordinator.get(f"/unit/custom/{request_id}").get_data(as_text=True)
    assert "高州市府前路 9 号 工会办公室" in detail
    paired = client_as("coop_manager")
    post_quote(paired, request_id, quote_form(world.coop))
    coordinator.post(
        f"/unit/custom/{request_id}/quotes/{quote_id(app, request_id, world.coop)}/accept"
    )
    with app.app_context():
        order = db.session.get(CustomRequest, request_id).order
        number = order.number
        assert (order.recipient, order.address) == ("王收货", "高州市府前路 9 号 工会办公室")
    note = paired.get(f"/coop/orders/{number}/delivery-note").get_data(as_text=True)
    assert "高州市府前路 9 号 工会办公室" in note and "王收货" in note
    assert "详细地址待补充" not in note
