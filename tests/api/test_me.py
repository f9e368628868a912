"""Notifications and my unit's campaign progress through the API."""

from __future__ import annotations

from market.extensions import db
from market.notifications.services import notify
from tests.api.conftest import assert_error


def _notify(app, user_id: int, n: int = 1) -> None:
    from flask_babel import lazy_gettext as _l

    with app.test_request_context():
        for _ in range(n):
            notify([user_id], "test", _l("已退出登录"), "", "/orders")
        db.session.commit()


def test_notifications_list_in_my_language_and_mark_read(app, api, world):
    _notify(app, world.employee, 3)
    client = api("employee")
    page = client.get("/notifications?per_page=2")
    body = page.get_json()
    assert body["pagination"]["total"] == 3 and len(body["items"]) == 2
    assert 'rel="next"' in page.headers["Link"]
    assert body["items"][0]["title"] == "已退出登录" and not body["items"][0]["read"]
    english = api("employee", language="en").get("/notifications").get_json()
    assert english["items"][0]["title"] == "You have signed out"
    first = body["items"][0]["id"]
    assert client.post(f"/notifications/{first}/read").get_json()["read"] is True
    assert client.post("/notifications/read-all").get_json() == {"marked": 2, "unread": 0}


def test_someone_elses_notification_is_404(app, api, world):
    _notify(app, world.employee)
    item = api("employee").get("/notifications").get_json()["items"][0]
    assert_error(api("buyer").post(f"/notifications/{item['id']}/read"), 404, "not_found")
    assert_error(api().get("/notifications"), 401)
    assert_error(api("buyer").get("/notifications?page=abc"), 422)


def test_my_units_campaign_progress_and_referral_link(app, api, world):
    client = api("coordinator")
    body = client.get("/unit/campaign").get_json()
    assert body["unit_id"] == world.unit
    assert body["referral_url"].endswith(f"/r/{body['referral_code']}")
    assert body["campaign_id"] is None  # no campaign runs in the bare world
    assert_error(api("employee").get("/unit/campaign"), 403, "forbidden")
    assert_error(api("buyer").get("/unit/campaign"), 403)
    assert_error(api().get("/unit/campaign"), 401)
    assert_error(client.get("/unit/campaign?campaign_id=999"), 404)
    assert_error(client.get("/unit/campaign?campaign_id=x"), 422)
