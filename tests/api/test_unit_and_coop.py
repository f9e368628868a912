"""以买代帮 for coordinators and the co-ops' parcels and stock through the API."""

from __future__ import annotations

from market.catalog.models import Sku
from market.extensions import db
from tests.api.conftest import assert_error
from tests.api.test_buying import sku_of


def _purchase(app, world, **overrides) -> dict:
    body = {
        "purpose": "canteen",
        "recipient": "李联络",
        "phone": "13800000001",
        "address": "高州市人民路 2 号",
        "invoice_title": "高州市市场监管局",
        "invoice_tax_id": "11440900MB2C12345X",
        "lines": [{"sku_id": sku_of(app, world.honey_product), "quantity": 3}],
    }
    body.update(overrides)
    return body


def test_draft_change_and_submit_a_unit_purchase(app, api, world):
    client = api("coordinator")
    made = client.post("/unit/purchases", _purchase(app, world))
    assert made.status_code == 201, made.get_json()
    purchase = made.get_json()
    assert purchase["status"] == "draft" and purchase["total"]["fen"] == 3 * 8800
    changed = client.post(
        f"/unit/purchases/{purchase['id']}", _purchase(app, world, purpose="festival")
    )
    assert changed.get_json()["purpose"] == "festival"
    submitted = client.post(f"/unit/purchases/{purchase['id']}/submit")
    assert submitted.get_json()["status"] == "submitted"
    assert_error(client.post(f"/unit/purchases/{purchase['id']}/submit"), 409)
    listing = api("approver").get("/unit/purchases").get_json()
    assert [p["id"] for p in listing["items"]] == [purchase["id"]]
    assert api("approver").get(f"/unit/purchases/{purchase['id']}").status_code == 200


def test_unit_purchase_refusals(app, api, world):
    client = api("coordinator")
    purchase = client.post("/unit/purchases", _purchase(app, world)).get_json()
    assert_error(api("other_coordinator").get(f"/unit/purchases/{purchase['id']}"), 404)
    assert_error(api("other_coordinator").post(f"/unit/purchases/{purchase['id']}/submit"), 404)
    assert_error(api("employee").post("/unit/purchases", _purchase(app, world)), 403)
    assert_error(api("approver").post("/unit/purchases", _purchase(app, world)), 403)
    assert_error(api().get("/unit/purchases"), 401)
    assert_error(client.post("/unit/purchases", _purchase(app, world, lines=[])), 422)
    too_many = _purchase(
        app, world, lines=[{"sku_id": sku_of(app, world.honey_product), "quantity": 51}]
    )
    assert_error(client.post("/unit/purchases", too_many), 400)


def test_a_coop_adjusts_its_stock(app, api, world):
    client = api("coop")
    sku_id = sku_of(app, world.honey_product)
    assert client.post(f"/coop/skus/{sku_id}/stock", {"delta": 5}).get_json()["stock"] == 55
    assert (
        client.post(f"/coop/skus/{sku_id}/stock", {"delta": -55}).get_json()["stock_state"]
        == "sold_out"
    )
    assert_error(client.post(f"/coop/skus/{sku_id}/stock", {"delta": -1}), 400)
    assert_error(client.post(f"/coop/skus/{sku_id}/stock", {"delta": "x"}), 422)
    assert_error(api("other_coop").post(f"/coop/skus/{sku_id}/stock", {"delta": 1}), 404)
    assert_error(api("employee").post(f"/coop/skus/{sku_id}/stock", {"delta": 1}), 403)
    assert_error(api().post(f"/coop/skus/{sku_id}/stock", {"delta": 1}), 401)
    with app.app_context():
        assert db.session.get(Sku, sku_id).stock == 0


def test_a_coops_parcels(app, api, world):
    from tests.api.test_buying import place

    place(app, api("employee"), world.honey_product)
    # Unpaid: awaiting payment, not yet to ship.
    assert api("coop").get("/coop/parcels").get_json()["items"] == []
    awaiting = api("coop").get("/coop/parcels?tab=awaiting").get_json()["items"]
    assert awaiting == [] or awaiting[0]["order_status"] == "pending_payment"
    assert api("other_coop").get("/coop/parcels?tab=awaiting").get_json()["items"] == []
    assert_error(api("coop").get("/coop/parcels?tab=nope"), 422)
    assert_error(api("employee").get("/coop/parcels"), 403)
    assert_error(api("coop").post("/coop/parcels/1/ship", {}), 422)


def test_changing_a_purchase_is_for_its_own_units_coordinator(app, api, world):
    client = api("coordinator")
    purchase = client.post("/unit/purchases", _purchase(app, world)).get_json()
    url = f"/unit/purchases/{purchase['id']}"
    assert_error(client.post(url, {"purpose": "nope"}), 422)
    assert_error(api("other_coordinator").post(url, _purchase(app, world)), 404)
    assert_error(api("approver").post(url, _purchase(app, world)), 403)
    client.post(f"{url}/submit")
    assert_error(client.post(url, _purchase(app, world)), 400)  # only a draft changes


def test_shipping_refusals(app, api, world):
    assert_error(api("coop").post("/coop/parcels/999999/ship", {"carrier": "顺丰"}), 404)
    assert_error(api("employee").post("/coop/parcels/1/ship", {"carrier": "顺丰"}), 403)
    assert_error(api().post("/coop/parcels/1/ship", {"carrier": "顺丰"}), 401)
    assert_error(api("coop").post("/coop/parcels/1/ship", {"carrier": ""}), 422)
