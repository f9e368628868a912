"""The campaign's read side: what the organizer, a unit coordinator, a co-op and the public see,
with figures that follow the ledger to the fen; campaigns and who may open which page."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from market import clock
from market.campaign import services
from market.campaign.models import AttributionEntry, Basis, Campaign
from market.campaign.read.coop_sales import sales_of
from market.campaign.read.dashboard import Dashboard, UnitRow, dashboard_of, unit_rows
from market.campaign.read.filters import Filters
from market.campaign.read.laggards import laggards_on
from market.campaign.read.unit_progress import progress_of
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order
from tests.campaign.conftest import (
    buy_and_pay,
    first_line,
    referral_code,
    set_targets,
)


def _units(app, campaign_id: int, **filters) -> dict[int, UnitRow]:
    with app.app_context():
        made = db.session.get(Campaign, campaign_id)
        rows = unit_rows(made, Filters(campaign_id, **filters))
        return {row.unit_id: row for row in rows}


def _dashboard(app, campaign_id: int, **filters) -> Dashboard:
    with app.app_context():
        made = db.session.get(Campaign, campaign_id)
        return dashboard_of(made, Filters(campaign_id, **filters), made.starts_on)


# -- campaigns -----------------------------------------------------------------------------------
def _campaign_form(**overrides) -> dict[str, str]:
    return {
        "name": "2027年我为果农办实事",
        "year": "2027",
        "starts_on": "2027-01-01",
        "ends_on": "2027-12-31",
        "paired_only": "y",
        "laggard_threshold_pct": "50",
        **overrides,
    }


def test_the_organizer_creates_and_edits_a_campaign(app, client_as):
    organizer = client_as("organizer")
    response = organizer.post("/admin/campaigns/new", data=_campaign_form())
    assert response.status_code == 302
    with app.app_context():
        made = db.session.scalar(select(Campaign))
        assert (made.name, made.year, str(made.starts_on), str(made.ends_on)) == (
            "2027年我为果农办实事",
            2027,
            "2027-01-01",
            "2027-12-31",
        )
        assert made.paired_only and made.laggard_threshold_pct == 50
        campaign_id = made.id
    listing = organizer.get("/admin/campaigns").get_data(as_text=True)
    assert "2027年我为果农办实事" in listing and "未开始" in listing
    response = organizer.post(
        f"/admin/campaigns/{campaign_id}/edit",
        data=_campaign_form(paired_only="", laggard_threshold_pct="70"),
    )
    assert response.status_code == 302
    with app.app_context():
        made = db.session.get(Campaign, campaign_id)
        assert not made.paired_only and made.laggard_threshold_pct == 70


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ends_on": "2026-12-31"}, "结束日期不能早于开始日期"),
        ({"laggard_threshold_pct": "120"}, "提醒线"),
        ({"starts_on": "2027-13-01"}, "is-invalid"),
    ],
)
def test_a_campaign_with_bad_dates_or_threshold_is_refused(app, client_as, overrides, message):
    response = client_as("organizer").post("/admin/campaigns/new", data=_campaign_form(**overrides))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Campaign)) is None


def test_campaigns_may_not_overlap(app, client_as, campaign):
    organizer = client_as("organizer")
    inside = (campaign.starts_on + timedelta(days=5)).isoformat()
    response = organizer.post(
        "/admin/campaigns/new", data=_campaign_form(starts_on=inside, ends_on="2099-01-01")
    )
    assert response.status_code == 400
    assert "日期重叠" in response.get_data(as_text=True)


def test_a_campaign_cannot_be_moved_away_from_its_ledger(app, client_as, world, campaign, sales):
    later = (campaign.ends_on + timedelta(days=400)).isoformat()
    response = client_as("organizer").post(
        f"/admin/campaigns/{campaign.id}/edit",
        data=_campaign_form(
            starts_on=(campaign.ends_on + timedelta(days=1)).isoformat(), ends_on=later
        ),
    )
    assert response.status_code == 400
    assert "台账记录在新的日期范围之外" in response.get_data(as_text=True)


# -- the organizer's figures ---------------------------------------------------------------------
def test_unit_figures_follow_the_ledger(app, world, campaign, sales):
    set_targets(app, campaign.id, {world.unit: 100_000, world.other_unit: 5_000})
    rows = _units(app, campaign.id)
    unit, other = rows[world.unit], rows[world.other_unit]
    assert (unit.net_fen, unit.paired_fen, unit.counted_fen) == (26_500, 17_600, 26_500)
    assert (unit.orders, unit.buyers, unit.target_fen) == (2, 1, 100_000)
    assert unit.pct == pytest.approx(26.5)
    assert unit.paired_share == pytest.approx(17_600 * 100 / 26_500)
    assert (other.net_fen, other.paired_fen, other.orders, other.buyers) == (8_900, 8_900, 1, 1)
    assert other.pct == pytest.approx(178.0)
    # Ranked by % of target: B (178 %) before A (26.5 %).
    assert (other.rank, unit.rank) == (1, 2)


def test_paired_only_counts_only_purchases_from_paired_villages(app, world, campaign, sales):
    with app.app_context():
        db.session.get(Campaign, campaign.id).paired_only = True
        db.session.commit()
    set_targets(app, campaign.id, {world.unit: 100_000})
    unit = _units(app, campaign.id)[world.unit]
    assert (unit.net_fen, unit.counted_fen) == (26_500, 17_600)
    assert unit.pct == pytest.approx(17.6)


def test_refunds_lower_the_figures(app, client_as, world, campaign, sales):
    line_id, _coop = first_line(app, sales.honey)
    response = client_as("coop_manager").post(
        f"/coop/lines/{line_id}/refund", data={"amount": "10", "reason": "破损"}
    )
    assert response.status_code == 303
    unit = _units(app, campaign.id)[world.unit]
    assert (unit.net_fen, unit.paired_fen, unit.orders) == (25_500, 16_600, 2)


def test_villages_towns_categories_trend_and_totals(app, world, campaign, sales):
    board = _dashboard(app, campaign.id)
    villages = {v.village_id: v for v in board.villages}
    assert (villages[world.village].net_fen, villages[world.village].paired_fen) == (17_600, 17_600)
    lychee_village = villages[world.other_village]
    assert (lychee_village.net_fen, lychee_village.attributed_fen) == (17_800, 17_800)
    assert (lychee_village.paired_fen, lychee_village.quantity) == (8_900, 2)
    assert {t.name: t.net_fen for t in board.towns} == {"古丁镇": 17_600, "根子镇": 17_800}
    assert [(c.name, c.net_fen, c.quantity) for c in board.categories] == [
        ("水果", 17_800, 2),
        ("蜂蜜", 17_600, 2),
    ]
    totals = board.totals
    assert (totals.net_fen, totals.attributed_fen, totals.unattributed_fen) == (35_400, 35_400, 0)
    assert (totals.paired_fen, totals.orders, totals.buyers) == (26_500, 3, 2)
    assert (totals.units_with_sales, totals.villages_with_sales) == (2, 2)
    assert sum(w.amount_fen for w in board.weeks) == 35_400
    assert board.weeks[-1].cumulative_fen == 35_400
    assert all(w.starts_on.weekday() == 0 for w in board.weeks)


def test_filters_narrow_every_figure(app, world, campaign, sales):
    today = clock.today()
    board = _dashboard(app, campaign.id, town_id=world.other_town)
    assert board.totals.net_fen == 17_800
    assert [v.village_id for v in board.villages] == [world.other_village]
    assert _units(app, campaign.id, town_id=world.other_town)[world.unit].net_fen == 8_900
    assert _dashboard(app, campaign.id, mode="group_buy").totals.net_fen == 0
    assert _dashboard(app, campaign.id, mode="retail").totals.net_fen == 35_400
    yesterday = today - timedelta(days=1)
    assert _dashboard(app, campaign.id, end=yesterday).totals.orders == 0
    assert _dashboard(app, campaign.id, start=today, end=today).totals.net_fen == 35_400


def test_unattributed_sales_count_for_the_village_only(app, client_as, world, campaign):
    buy_and_pay(app, client_as("buyer"), client_as("finance"), world.honey_product)
    board = _dashboard(app, campaign.id)
    assert (board.totals.net_fen, board.totals.unattributed_fen) == (8_800, 8_800)
    assert all(u.net_fen == 0 for u in board.units)
    assert {v.village_id: v.net_fen for v in board.villages}[world.village] == 8_800


def test_ranks_break_ties_by_amount_share_equals_and_put_units_without_target_last(
    app, world, campaign, sales
):
    set_targets(app, campaign.id, {world.unit: 26_500, world.other_unit: 8_900})
    rows = _units(app, campaign.id)
    # Both at 100 %: the larger amount goes first.
    assert (rows[world.unit].rank, rows[world.other_unit].rank) == (1, 2)
    with app.app_context():
        from market.directory.models import Unit

        db.session.add_all([Unit(name="高州市新单位甲"), Unit(name="高州市新单位乙")])
        db.session.commit()
    newcomers = [r for r in _units(app, campaign.id).values() if r.name.startswith("高州市新单位")]
    assert [(r.rank, r.pct) for r in newcomers] == [(3, None), (3, None)]


def test_the_dashboard_page_shows_the_figures_charts_and_a_sortable_table(
    app, client_as, world, campaign, sales
):
    set_targets(app, campaign.id, {world.unit: 100_000, world.other_unit: 5_000})
    response = client_as("organizer").get(f"/admin/campaigns/{campaign.id}/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "¥354.00" in page and "¥265.00" in page
    assert (
        '<table class="table table-sm table-hover align-middle sortable" id="units-table"' in page
    )
    assert 'data-sort="26.500000"' in page and 'data-sort="178.000000"' in page
    chart = json.loads(
        re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.S)[1]
    )
    assert chart["top_units"]["names"][:2] == ["高州市市场监管局", "高州市委办"]
    assert chart["top_units"]["counted_fen"][:2] == [26_500, 8_900]
    assert {c["name"]: c["value_fen"] for c in chart["categories"]} == {
        "水果": 17_800,
        "蜂蜜": 17_600,
    }
    assert sum(chart["trend"]["amount_fen"]) == 35_400
    # The scripts by their fingerprinted names (market/assets.py), cached for a year.
    assert re.search(r"/static/dist/vendor/echarts/echarts\.min\.[0-9a-f]{12}\.js", page)
    assert re.search(r"/static/dist/js/charts\.[0-9a-f]{12}\.js", page)
    assert "<script>" not in page  # no inline script: the CSP forbids it


def test_the_dashboard_filters_come_from_the_query_string(app, client_as, world, campaign, sales):
    organizer = client_as("organizer")
    page = organizer.get(
        f"/admin/campaigns/{campaign.id}/dashboard?town={world.other_town}&mode=retail"
    ).get_data(as_text=True)
    assert re.search(r'id="total-net">¥178.00<', page)
    assert f"town={world.other_town}" in page  # the export links keep the filters
    page = organizer.get(
        f"/admin/campaigns/{campaign.id}/dashboard?start=not-a-date&mode=nonsense"
    ).get_data(as_text=True)
    assert re.search(r'id="total-net">¥354.00<', page)


# -- laggards ------------------------------------------------------------------------------------
def test_laggards_are_below_the_threshold_of_the_prorated_target(app, world, campaign, sales):
    # 100 days, today is the 10th: a target is pro-rated to a tenth; the threshold is 60 %.
    set_targets(app, campaign.id, {world.unit: 1_000_000, world.other_unit: 148_333})
    with app.app_context():
        result = laggards_on(db.session.get(Campaign, campaign.id), clock.today())
    assert (result.elapsed_days, result.total_days) == (10, 100)
    assert [g.unit_id for g in result.laggards] == [world.unit]
    lag = result.laggards[0]
    assert (lag.expected_fen, lag.threshold_fen, lag.counted_fen) == (100_000, 60_000, 26_500)
    assert lag.shortfall_fen == 33_500
    # B needs ceil(60 % × 148 333 / 10) = 8 900 and has exactly 8 900: not listed. One fen
    # more of target and it is.
    with app.app_context():
        from market.campaign.models import UnitTarget

        db.session.scalar(
            select(UnitTarget).where(UnitTarget.unit_id == world.other_unit)
        ).amount_fen = 148_334
        db.session.commit()
        result = laggards_on(db.session.get(Campaign, campaign.id), clock.today())
    assert [g.unit_id for g in result.laggards] == [world.unit, world.other_unit]


def test_laggards_count_sales_only_through_the_chosen_day(app, world, campaign, sales):
    set_targets(app, campaign.id, {world.other_unit: 10_000})
    yesterday = clock.today() - timedelta(days=1)
    with app.app_context():
        made = db.session.get(Campaign, campaign.id)
        assert [g.unit_id for g in laggards_on(made, yesterday).laggards] == [world.other_unit]
        before = laggards_on(made, made.starts_on - timedelta(days=3))
        assert before.elapsed_days == 0 and before.laggards == []


def test_the_laggard_page_has_a_date_picker(app, client_as, world, campaign, sales):
    set_targets(app, campaign.id, {world.unit: 1_000_000})
    organizer = client_as("organizer")
    page = organizer.get(f"/admin/campaigns/{campaign.id}/laggards").get_data(as_text=True)
    assert 'type="date"' in page and "高州市市场监管局" in page and "¥600.00" in page
    day = (campaign.starts_on - timedelta(days=1)).isoformat()
    page = organizer.get(f"/admin/campaigns/{campaign.id}/laggards?on={day}").get_data(as_text=True)
    assert "活动尚未开始" in page


# -- reconciliation ------------------------------------------------------------------------------
def test_the_reconciliation_page_agrees_then_lists_every_difference(
    app, client_as, world, campaign, sales
):
    organizer = client_as("organizer")
    page = organizer.get("/admin/reconciliation").get_data(as_text=True)
    assert "一致：台账、收款和看板汇总分毫不差" in page and "¥354.00" in page
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == sales.lychee))
        line = order.lines[0]
        payment_id = db.session.scalar(
            select(AttributionEntry.payment_id).where(AttributionEntry.order_id == order.id)
        )
        # A stray entry written around the hook (what reconciliation exists to catch).
        db.session.add(
            AttributionEntry(
                campaign_id=campaign.id,
                order_id=order.id,
                order_line_id=line.id,
                payment_id=payment_id,
                buyer_id=order.buyer_id,
                unit_id=world.unit,
                village_id=line.village_id,
                coop_id=line.coop_id,
                product_id=line.product_id,
                category_id=line.category_id,
                mode="retail",
                basis=Basis.MEMBER,
                paired=False,
                amount_fen=123,
                quantity=0,
                at=utcnow(),
                day=clock.today(),
            )
        )
        db.session.commit()
        result = services.reconciliation()
    assert [(d.order_number, d.ledger_fen, d.money_fen) for d in result.differences] == [
        (sales.lychee, 9_023, 8_900)
    ]
    assert not result.rollups_equal and not result.agrees
    page = organizer.get("/admin/reconciliation").get_data(as_text=True)
    assert "不一致" in page and sales.lychee in page and "¥1.23" in page


# -- a unit coordinator's page -------------------------------------------------------------------
def test_the_coordinator_sees_progress_rank_participation_and_referrals(
    app, client_as, world, campaign, sales
):
    set_targets(app, campaign.id, {world.unit: 100_000, world.other_unit: 5_000})
    page = client_as("coordinator").get("/unit/campaign").get_data(as_text=True)
    assert re.search(r'id="unit-counted">¥265.00<', page)
    assert "26.5%" in page and "第 2 名" in page and "共 2 个单位" in page
    # Three confirmed members (coordinator, approver, employee); the employee bought.
    assert re.search(r'id="unit-participation">1 / 3<', page)
    assert "古丁村" in page and "柏桥村" in page
    other = client_as("other_coordinator").get("/unit/campaign").get_data(as_text=True)
    assert re.search(r'id="unit-counted">¥89.00<', other) and "第 1 名" in other
    assert "访问 1 次 · 带来订单 1 笔 · 销售额 ¥89.00" in other
    assert f"/r/{referral_code(app, world.other_unit)}" in other


def test_referral_visits_and_sales_are_counted(app, client_as, world, campaign):
    code = referral_code(app, world.unit)
    buyer = client_as("buyer")
    for _ in range(3):
        assert buyer.get(f"/r/{code}").status_code == 302
    buy_and_pay(app, buyer, client_as("finance"), world.herb_product, 2)
    with app.app_context():
        progress = progress_of(db.session.get(Campaign, campaign.id), world.unit)
    assert (progress.referral_visits, progress.referral_orders, progress.referral_fen) == (
        3,
        1,
        5_000,
    )
    assert progress.row.net_fen == 5_000 and progress.member_buyers == 0


def test_the_coordinator_page_without_a_campaign(app, client_as, world):
    page = client_as("coordinator").get("/unit/campaign").get_data(as_text=True)
    assert "暂无帮扶活动" in page


# -- a co-op's page ------------------------------------------------------------------------------
def test_a_coop_sees_its_own_sales_by_product_and_by_unit(app, client_as, world, campaign, sales):
    buy_and_pay(app, client_as("buyer"), client_as("finance"), world.herb_product)
    page = client_as("other_coop_manager").get("/coop/sales").get_data(as_text=True)
    assert re.search(r'id="coop-total">¥178.00<', page)
    assert "白糖罂荔枝" in page and "原生态蜂蜜" not in page
    assert "高州市市场监管局" in page and "高州市委办" in page
    with app.app_context():
        sales_a = sales_of([world.coop], db.session.get(Campaign, campaign.id))
    assert [(r.name, r.net_fen, r.quantity) for r in sales_a.by_product] == [
        ("原生态蜂蜜", 17_600, 2),
        ("藿香", 2_500, 1),
    ]
    assert [(r.key, r.net_fen) for r in sales_a.by_unit] == [(world.unit, 17_600), (0, 2_500)]
    everything = client_as("coop_manager").get("/coop/sales?campaign=0").get_data(as_text=True)
    assert "未归属单位" in everything and "¥201.00" in everything


# -- the public page -----------------------------------------------------------------------------
def test_the_public_page_shows_the_total_villages_and_products(app, client, world, campaign, sales):
    response = client.get("/campaign")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(r'id="public-total">¥354.00<', page)
    assert re.search(r'id="public-orders">3<', page)
    assert re.search(r'id="public-villages">2<', page) and re.search(r'id="public-units">2<', page)
    top = page[page.index('id="public-top-villages"') :]
    assert top.index("柏桥村") < top.index("古丁村")  # ¥178 before ¥176
    assert "白糖罂荔枝" in page and "原生态蜂蜜" in page
    assert "data-refresh-seconds" in page


def test_the_public_page_before_any_campaign(client, world):
    assert "活动即将开始" in client.get("/campaign").get_data(as_text=True)


# -- QR codes and the poster ---------------------------------------------------------------------
def test_the_qr_code_carries_the_units_absolute_referral_link(app, client_as, world):
    url = f"http://localhost/r/{referral_code(app, world.unit)}"
    coordinator = client_as("coordinator")
    png = coordinator.get(f"/units/{world.unit}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data == services.qr_png(url)
    svg = coordinator.get(f"/units/{world.unit}/qr.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert svg.data == services.qr_svg(url)


def test_the_poster_shows_the_unit_its_villages_products_and_qr(app, client_as, world, campaign):
    page = client_as("organizer").get(f"/units/{world.unit}/poster").get_data(as_text=True)
    assert "高州市市场监管局" in page
    assert re.search(r'id="poster-villages">古丁镇古丁村<', page)
    assert "原生态蜂蜜" in page and "藿香" in page and "益智（草稿）" not in page
    assert f"/units/{world.unit}/qr.svg" in page
    assert f"http://localhost/r/{referral_code(app, world.unit)}" in page
    assert "size: A4" in page


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("coordinator", 200),
        ("organizer", 200),
        ("admin", 200),
        ("other_coordinator", 403),
        ("employee", 403),
        ("coop_manager", 403),
        ("buyer", 403),
    ],
)
def test_only_the_units_coordinator_and_organizers_get_its_qr_and_poster(
    client_as, world, role, status
):
    client = client_as(role)
    for page in ("qr.png", "qr.svg", "poster"):
        assert client.get(f"/units/{world.unit}/{page}").status_code == status, page


# -- who may open what ---------------------------------------------------------------------------
ORGANIZER_PAGES = [
    "/admin/campaigns",
    "/admin/campaigns/new",
    "/admin/campaigns/{campaign}/edit",
    "/admin/campaigns/{campaign}/targets",
    "/admin/campaigns/{campaign}/dashboard",
    "/admin/campaigns/{campaign}/laggards",
    "/admin/campaigns/{campaign}/export.xlsx",
    "/admin/campaigns/{campaign}/units.csv",
    "/admin/campaigns/{campaign}/ledger.csv",
    "/admin/campaigns/{campaign}/laggards.csv",
    "/admin/reconciliation",
]


@pytest.mark.parametrize(
    ("role", "organizer_pages", "unit_page", "coop_page"),
    [
        ("organizer", 200, 403, 403),
        ("admin", 200, 404, 200),  # an admin names a unit with ?unit=
        ("coordinator", 403, 200, 403),
        ("approver", 403, 403, 403),
        ("employee", 403, 403, 403),
        ("coop_manager", 403, 403, 200),
        ("buyer", 403, 403, 403),
    ],
)
def test_each_role_reaches_exactly_its_campaign_pages(
    client_as, world, campaign, role, organizer_pages, unit_page, coop_page
):
    client = client_as(role)
    for page in ORGANIZER_PAGES:
        assert client.get(page.format(campaign=campaign.id)).status_code == organizer_pages, page
    assert client.get("/unit/campaign").status_code == unit_page
    assert client.get("/coop/sales").status_code == coop_page
    assert client.get("/campaign").status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(client, world, campaign):
    for page in [*ORGANIZER_PAGES, "/unit/campaign", "/coop/sales", "/units/1/poster"]:
        response = client.get(page.format(campaign=campaign.id))
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/login?next=")


def test_an_admin_opens_any_units_page(client_as, world, campaign):
    assert client_as("admin").get(f"/unit/campaign?unit={world.unit}").status_code == 200
