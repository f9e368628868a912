"""Group-buys through the API: my unit's list, detail with progress and the tier reached,
join / change / leave, and a coordinator proposing one; the pages' rules (members only)."""

from __future__ import annotations

from datetime import timedelta

from market.models import utcnow
from tests.api.conftest import assert_error
from tests.groupbuy.conftest import Kit


def test_list_detail_join_change_leave(app, api, world):
    kit = Kit(app, world)
    group_buy_id = kit.open()
    item_id = kit.item_ids(group_buy_id)[0]
    client = api("employee")
    listing = client.get("/group-buys").get_json()
    assert [g["id"] for g in listing["items"]] == [group_buy_id]
    joined = client.post(
        f"/group-buys/{group_buy_id}/join", {"items": [{"item_id": item_id, "quantity": 5}]}
    )
    assert joined.status_code == 201, joined.get_json()
    body = joined.get_json()
    assert body["progress"]["total_quantity"] == 5 and body["progress"]["reached"]
    assert body["progress"]["tier_reached"] == 5
    assert body["items"][0]["current_price"]["fen"] == 7000
    assert body["mine"]["quantities"] == {str(item_id): 5}
    changed = client.post(
        f"/group-buys/{group_buy_id}/change", {"items": [{"item_id": item_id, "quantity": 10}]}
    )
    assert changed.get_json()["progress"]["tier_reached"] == 10
    assert changed.get_json()["items"][0]["current_price"]["fen"] == 6000
    again = client.post(
        f"/group-buys/{group_buy_id}/join", {"items": [{"item_id": item_id, "quantity": 1}]}
    )
    assert again.status_code in (400, 409)
    left = client.post(f"/group-buys/{group_buy_id}/leave")
    assert left.status_code == 200 and left.get_json()["progress"]["total_quantity"] == 0
    assert left.get_json()["mine"]["status"] == "left"


def test_group_buy_refusals(app, api, world):
    kit = Kit(app, world)
    group_buy_id = kit.open()
    item_id = kit.item_ids(group_buy_id)[0]
    # Members only: another unit's coordinator does not see it (someone else's object).
    assert_error(api("other_coordinator").get(f"/group-buys/{group_buy_id}"), 404)
    join = {"items": [{"item_id": item_id, "quantity": 1}]}
    assert_error(api("other_coordinator").post(f"/group-buys/{group_buy_id}/join", join), 404)
    assert_error(api().get(f"/group-buys/{group_buy_id}"), 401)
    assert_error(api("employee").post(f"/group-buys/{group_buy_id}/join", {"items": []}), 422)
    nested = api("employee").post(
        f"/group-buys/{group_buy_id}/join", {"items": [{"item_id": 0, "quantity": 1}]}
    )
    assert assert_error(nested, 422)["fields"] == {"items.0.item_id": ["应在 1 到 2147483647 之间"]}
    assert_error(api("employee").get("/group-buys/999999"), 404)
    assert_error(api("employee").post(f"/group-buys/{group_buy_id}/leave"), 400)
    assert api("buyer").get("/group-buys").get_json()["items"] == []
    # A card payment for a pick-up group-buy is refused.
    assert_error(api("employee").post(f"/group-buys/{group_buy_id}/pay"), 400)
    # Proposed, not accepted yet: nobody outside the unit's coordinators knows it exists.
    proposed = kit.propose()
    assert_error(api("employee").get(f"/group-buys/{proposed}"), 404)


def _proposal(app, world, **overrides) -> dict:
    kit = Kit(app, world)
    body = {
        "title": "蜂蜜团购",
        "closes_at": (utcnow() + timedelta(days=2)).isoformat(),
        "min_quantity": 5,
        "payment_mode": "pickup",
        "visibility": "members",
        "pickup_address": "一楼大厅",
        "items": [
            {
                "sku_id": kit.sku_of(world.honey_product),
                "price_fen": 8000,
                "tiers": [{"min_total_quantity": 10, "price_fen": 7000}],
            }
        ],
    }
    body.update(overrides)
    return body


def test_a_coordinator_proposes_a_group_buy(app, api, world):
    client = api("coordinator")
    made = client.post("/unit/group-buys", _proposal(app, world))
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["status"] == "proposed"
    assert made.get_json()["items"][0]["tiers"][0]["price"]["fen"] == 7000
    past = _proposal(app, world, closes_at=(utcnow() - timedelta(hours=1)).isoformat())
    assert assert_error(client.post("/unit/group-buys", past), 400)["fields"] == {
        "closes_at": ["截止时间必须晚于现在"]
    }
    assert_error(client.post("/unit/group-buys", {"title": ""}), 422)
    naive = _proposal(app, world, closes_at="2030-01-01T10:00:00")
    assert_error(client.post("/unit/group-buys", naive), 422)
    assert_error(api("employee").post("/unit/group-buys", _proposal(app, world)), 403)
    assert_error(api().post("/unit/group-buys", _proposal(app, world)), 401)
    other = _proposal(app, world)
    other["items"][0]["sku_id"] = Kit(app, world).sku_of(world.other_draft)
    assert client.post("/unit/group-buys", other).status_code in (400, 404)


def test_paying_for_someone_elses_participation_is_404(app, api, world):
    kit = Kit(app, world)
    group_buy_id = kit.open()
    assert_error(api("other_coordinator").post(f"/group-buys/{group_buy_id}/pay"), 404)
    assert_error(api("other_coordinator").post(f"/group-buys/{group_buy_id}/leave"), 404)
    item_id = kit.item_ids(group_buy_id)[0]
    change = {"items": [{"item_id": item_id, "quantity": 2}]}
    assert_error(api("other_coordinator").post(f"/group-buys/{group_buy_id}/change", change), 404)
    assert_error(api("employee").post(f"/group-buys/{group_buy_id}/change", {"items": "x"}), 422)
    assert_error(api().post(f"/group-buys/{group_buy_id}/pay"), 401)


def test_the_coop_answers_a_proposal(app, api, world):
    kit = Kit(app, world)
    first, second = kit.propose(), kit.propose()
    coop = api("coop")
    listing = coop.get("/coop/group-buys").get_json()
    assert {g["id"] for g in listing["proposed"]} == {first, second}
    assert_error(api("other_coop").post(f"/coop/group-buys/{first}/accept"), 404)
    assert_error(api("employee").post(f"/coop/group-buys/{first}/accept"), 403)
    assert coop.post(f"/coop/group-buys/{first}/accept").get_json()["status"] == "open"
    assert_error(coop.post(f"/coop/group-buys/{first}/accept"), 409)
    assert_error(coop.post(f"/coop/group-buys/{second}/decline", {}), 422)
    declined = coop.post(f"/coop/group-buys/{second}/decline", {"reason": "产量不足"})
    assert declined.get_json()["status"] == "declined"
    assert [g["id"] for g in api("employee").get("/group-buys").get_json()["items"]] == [first]
