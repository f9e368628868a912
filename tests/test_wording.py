"""Issue 12, the words people read: each test asserts the text a user sees on the real pages
(pay deadlines, whose money went where, amounts in notices, the price a group-buy card shows,
labels that match), and the small gaps (备注 kept, sold out at checkout, a delisted product's
link, villages in pinyin order, QR file names, a refund's confirmation step, search synonyms,
English category names)."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

from sqlalchemy import func, select

from market.accounts.models import CoopMembership, User
from market.catalog.models import Category, Product, ProductStatus, SearchSynonym
from market.directory.models import Coop
from market.extensions import db
from market.groupbuy.models import PaymentMode
from market.orders.models import Order
from market.payments.models import Refund
from tests import factories
from tests.campaign.conftest import buy_and_pay, pay
from tests.groupbuy.conftest import Kit
from tests.orders.conftest import buy, place, sku_of
from tests.procurement.test_custom import post_quote, post_request, quote_form, quote_id
from tests.procurement.test_purchases import approved, confirm, draft, orders_of


def text(response) -> str:
    return response.get_data(as_text=True)


def order_of(app, number: str) -> Order:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        db.session.expunge(order)
        return order


# -- point 4: wording ---------------------------------------------------------------------------
def test_a_unit_orders_pay_page_says_it_has_no_deadline_and_a_retail_one_gives_its_time(
    app, client_as, world
):
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    number = orders_of(app, purchase_id)[0].number
    page = text(client_as("coordinator").get(f"/orders/{number}/pay"))
    assert "请在  前付款" not in page and "请在 前付款" not in page
    assert "单位订单没有付款时限，不会超时关闭" in page

    buyer = client_as("buyer")
    retail = buy(buyer, sku_of(app, world.herb_product))
    shown = re.search(r"请在 (\S+ \S+) 前付款", text(buyer.get(f"/orders/{retail}/pay")))
    assert shown and re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", shown.group(1))


def test_a_released_participation_says_no_money_is_taken(app, world, client_as):
    kit = Kit(app, world)
    group_buy_id = kit.open(payment_mode=PaymentMode.PICKUP)
    kit.join(world.employee, group_buy_id, 1)  # the minimum is 5: it fails
    kit.close(group_buy_id)
    page = text(client_as("employee").get(f"/group-buys/{group_buy_id}"))
    assert "已释放" not in page
    assert "未结算（未扣款或已全额退款）" in page
    assert "这次参团没有结算，不会向您收款。" in page


def test_the_group_buy_card_shows_the_tier_price_everyone_pays_after_closing(app, world, client_as):
    kit = Kit(app, world)
    group_buy_id = kit.open(payment_mode=PaymentMode.PICKUP)  # ¥80, from 5 in all ¥70
    kit.join(world.employee, group_buy_id, 5)
    kit.close(group_buy_id)
    cards = text(client_as("employee").get("/group-buys"))
    card = cards[cards.index("消费帮扶 · 蜂蜜团购") :]
    assert '原生态蜂蜜 <span class="card-price">¥70.00</span>' in card
    assert "¥80.00" not in card.split("</a>")[0]


def test_confirming_a_transfer_says_how_much_was_received(app, client_as, world):
    buyer, finance = client_as("buyer"), client_as("finance")
    number = buy(buyer, sku_of(app, world.honey_product), 2)
    buyer.post(f"/orders/{number}/pay/offline")
    response = finance.post(
        f"/orders/{number}/transfer-received",
        data={"reference": "BANK-1", "transfer_date": date.today().isoformat()},
        follow_redirects=True,
    )
    assert f"已确认收款 ¥176.00，订单 {number} 已付款" in text(response)


def test_the_losing_quote_reads_as_the_flash_said(app, client_as, world):
    coordinator = client_as("coordinator")
    response = post_request(  # with the delivery address a custom request now asks for
        coordinator, None, recipient="李联络", phone="13800000001", address="高州市府前路 1 号"
    )
    assert response.status_code == 303, text(response)[-2000:]
    request_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    coordinator.post(f"/unit/custom/{request_id}/open")
    paired, other = client_as("coop_manager"), client_as("other_coop_manager")
    post_quote(paired, request_id, quote_form(world.coop, "98.50", "15"))
    post_quote(other, request_id, quote_form(world.other_coop, "90", "25"))
    chosen = quote_id(app, request_id, world.coop)
    response = coordinator.post(
        f"/unit/custom/{request_id}/quotes/{chosen}/accept", follow_redirects=True
    )
    assert "其他报价未选中，已谢绝" in text(response)
    assert "未选中，已谢绝" in text(other.get("/coop/custom"))
    assert "已自动谢绝" not in text(response)


def test_the_refund_limit_is_written_with_the_thousands_separator(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product), 20)  # ¥1,760.00
    pay(buyer, client_as("finance"), number)
    with app.app_context():
        line_id = db.session.scalar(select(Order).where(Order.number == number)).lines[0].id
    coop = client_as("coop_manager")
    for path in (f"/coop/lines/{line_id}/refund/confirm", f"/coop/lines/{line_id}/refund"):
        page = text(
            coop.post(path, data={"amount": "2000", "reason": "破损"}, follow_redirects=True)
        )
        assert "最多可退 ¥1,760.00" in page


def test_the_laggard_column_says_it_is_a_percentage(app, client_as, world):
    from market import clock
    from market.campaign.models import Campaign

    today = clock.today()
    with app.app_context():
        made = Campaign(
            name="我为果农办实事",
            year=today.year,
            starts_on=date(today.year, 1, 1),
            ends_on=date(today.year, 12, 31),
            paired_only=False,
            laggard_threshold_pct=60,
        )
        db.session.add(made)
        db.session.commit()
        campaign_id = made.id
    page = text(client_as("organizer").get(f"/admin/campaigns/{campaign_id}/laggards"))
    assert "折算目标完成率（%）" in page
    assert ">完成折算目标<" not in page


def test_participation_counts_people_who_bought_with_their_own_money(app, client_as, world):
    from market import clock
    from market.campaign.models import Campaign

    today = clock.today()
    with app.app_context():
        db.session.add(
            Campaign(
                name="我为果农办实事",
                year=today.year,
                starts_on=date(today.year, 1, 1),
                ends_on=date(today.year, 12, 31),
                paired_only=False,
                laggard_threshold_pct=60,
            )
        )
        db.session.commit()
    coordinator, finance = client_as("coordinator"), client_as("finance")
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    number = orders_of(app, purchase_id)[0].number
    coordinator.post(f"/unit/purchases/{purchase_id}/transfer")
    assert confirm(finance, number).status_code == 303

    def participation() -> str:
        page = text(coordinator.get("/unit/campaign"))
        return re.search(r'id="unit-participation">([^<]*)<', page).group(1).strip()

    assert participation() == "0 / 3"  # the unit's purchase is not the coordinator's own
    buy_and_pay(app, client_as("employee"), finance, world.herb_product)
    assert participation() == "1 / 3"
    assert "自费购买的职工" in text(coordinator.get("/unit/campaign"))


def test_unit_orders_stay_out_of_the_coordinators_own_orders(app, client_as, world):
    coordinator = client_as("coordinator")
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    unit_order = orders_of(app, purchase_id)[0].number
    own = buy(coordinator, sku_of(app, world.herb_product))
    mine = text(coordinator.get("/orders"))
    assert own in mine and unit_order not in mine
    assert "为单位下的采购和定制订单请到" in mine
    assert unit_order in text(coordinator.get(f"/unit/purchases/{purchase_id}"))


def test_online_payment_is_not_offered_without_card_payments(app, client_as, world, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    coordinator = client_as("coordinator")
    assert "在线支付" not in text(coordinator.get("/unit/purchases/new"))
    purchase_id = draft(coordinator, (sku_of(app, world.honey_product), 2), pay_online="y")
    coordinator.post(f"/unit/purchases/{purchase_id}/submit")
    client_as("approver").post(f"/unit/purchases/{purchase_id}/approve")
    page = text(coordinator.get(f"/unit/purchases/{purchase_id}"))
    assert "在线支付" not in page
    assert re.search(r'id="pay-method">对公转账<', page)

    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_cards_on")
    assert "在线支付" in text(coordinator.get("/unit/purchases/new"))


# -- small gaps ---------------------------------------------------------------------------------
def test_the_checkout_note_is_kept_and_shown_to_the_coop_and_the_buyer(app, client_as, world):
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 1})
    response = place(buyer, note="请周末送货，电话联系")
    assert response.status_code == 303
    number = response.headers["Location"].split("/")[2]
    assert order_of(app, number).note == "请周末送货，电话联系"
    assert "备注：请周末送货，电话联系" in text(buyer.get(f"/orders/{number}"))
    inbox = text(client_as("coop_manager").get("/coop/orders?tab=awaiting"))
    assert "备注：请周末送货，电话联系" in inbox


def test_a_sold_out_cart_offers_no_submit_but_a_way_back_to_the_cart(app, client_as, world):
    buyer = client_as("buyer")
    honey = sku_of(app, world.honey_product)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    with app.app_context():
        from market.catalog.models import Sku

        db.session.get(Sku, honey).stock = 0
        db.session.commit()
    page = text(buyer.get("/checkout"))
    assert "原生态蜂蜜 500g：已售罄" in page
    assert 'id="fix-cart"' in page and 'href="/cart"' in page
    assert ">提交订单" not in page and 'type="submit">' not in page.split('id="checkout-form"')[1]


def test_a_delisted_products_link_says_so_and_offers_the_villages_other_products(
    app, client, client_as, world
):
    client_as("coop_manager").post(
        f"/coop/products/{world.honey_product}/status", data={"status": "delisted"}
    )
    response = client.get(f"/products/{world.honey_product}")
    assert response.status_code == 410
    page = text(response)
    assert "“原生态蜂蜜”已下架" in page
    assert f'href="/products/{world.herb_product}"' in page  # 藿香, same village
    assert f'href="/villages/{world.village}"' in page
    assert client.get(f"/products/{world.draft}").status_code == 404  # a draft was never public


def test_villages_list_towns_in_pinyin_order(app, client, world):
    page = text(client.get("/villages"))
    # 根子镇 (gen) before 古丁镇 (gu), though 古 comes before 根 by code point.
    assert page.index("根子镇") < page.index("古丁镇")


def test_qr_downloads_are_named_after_the_unit(app, client_as, world):
    response = client_as("coordinator").get(f"/units/{world.unit}/qr.png")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote('高州市市场监管局-推广二维码.png')}" in disposition
    assert 'filename="unit-' in disposition  # an ASCII name for old clients
    svg = client_as("coordinator").get(f"/units/{world.unit}/qr.svg")
    assert quote("高州市市场监管局-推广二维码.svg") in svg.headers["Content-Disposition"]


def test_a_refund_is_confirmed_before_money_moves_and_only_once(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product), 2)
    pay(buyer, client_as("finance"), number)
    with app.app_context():
        line_id = db.session.scalar(select(Order).where(Order.number == number)).lines[0].id
    coop = client_as("coop_manager")
    inbox = text(coop.get("/coop/orders?tab=to_ship"))
    assert f"/coop/lines/{line_id}/refund/confirm" in inbox

    token = "ab" * 16
    step = coop.post(
        f"/coop/lines/{line_id}/refund/confirm",
        data={"amount": "10", "reason": "一瓶破损", "form_token": token},
        headers={"Referer": "http://localhost/coop/orders?tab=to_ship"},
    )
    page = text(step)
    assert step.status_code == 200
    assert re.search(r'id="refund-amount">¥10.00<', page)
    assert re.search(r'id="refund-reason">一瓶破损<', page)
    assert "确认退款 ¥10.00" in page and f'value="{token}"' in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 0

    form = {"amount": "10", "reason": "一瓶破损", "form_token": token, "next": "/coop/orders"}
    done = coop.post(f"/coop/lines/{line_id}/refund", data=form, follow_redirects=True)
    assert "已退款 ¥10.00：财务将转账退回买家" in text(done)
    again = coop.post(f"/coop/lines/{line_id}/refund", data=form, follow_redirects=True)
    assert "这项操作已经提交过" in text(again)
    with app.app_context():
        assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 1000


def test_seed_demo_prints_the_coop_managers_coop_as_it_is_named(app):
    with app.app_context():
        output = app.test_cli_runner().invoke(args=["seed-demo"]).output
        coop_name = db.session.scalar(
            select(Coop.name)
            .join(CoopMembership, CoopMembership.coop_id == Coop.id)
            .join(User, User.id == CoopMembership.user_id)
            .where(User.email == "coop@example.com")
        )
    line = next(line for line in output.splitlines() if "coop@example.com" in line)
    assert f"合作社管理员（{coop_name}）" in line


# -- point 5: synonyms and English category names ------------------------------------------------
def test_the_organizer_keeps_synonyms_and_search_finds_what_people_call_things(
    app, client, client_as, world
):
    with app.app_context():
        factories.make_product(
            db.session.get(Coop, world.coop),
            db.session.get(Category, world.herbs),
            "高山红薯",
            price_fen=3990,
        )
        db.session.commit()
    assert "高山红薯" not in text(client.get("/products?q=地瓜"))

    organizer = client_as("organizer")
    assert client_as("coordinator").get("/admin/synonyms").status_code == 403
    assert organizer.post("/admin/synonyms/new", data={"terms": "薯" * 201}).status_code == 400
    assert "至少要有两个词" in text(organizer.post("/admin/synonyms/new", data={"terms": "红薯"}))
    response = organizer.post("/admin/synonyms/new", data={"terms": "红薯，番薯 地瓜"})
    assert response.status_code == 302
    page = text(organizer.get("/admin/synonyms"))
    assert "红薯" in page and "番薯" in page and "地瓜" in page
    for word in ("地瓜", "番薯", "红薯"):
        assert "高山红薯" in text(client.get(f"/products?q={word}")), word
    assert "高山红薯" not in text(client.get("/products?q=蜂蜜"))

    refused = organizer.post("/admin/synonyms/new", data={"terms": "地瓜 甘薯"})
    assert "“地瓜”已在另一组同义词中" in text(refused)
    with app.app_context():
        group_id = db.session.scalar(select(SearchSynonym.id))
    organizer.post(f"/admin/synonyms/{group_id}/delete")
    assert "高山红薯" not in text(client.get("/products?q=地瓜"))


def test_the_english_ui_shows_category_names_in_english(app, client, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post(
        f"/admin/categories/{world.honey}/edit",
        data={"name": "蜂蜜", "name_en": "Honey", "slug": "honey", "sort_order": "1"},
    )
    assert response.status_code == 302
    with client.session_transaction() as session:
        session["lang"] = "en"
    english = text(client.get("/"))
    assert "Honey" in english
    assert "Honey" in text(client.get(f"/products/{world.honey_product}"))
    chinese = text(client_as("buyer").get("/"))
    assert "蜂蜜" in chinese and ">Honey <" not in chinese
    assert "Honey" in text(organizer.get("/admin/categories"))


def test_demo_data_seeds_synonyms_and_english_category_names(app):
    with app.app_context():
        assert "Demo data loaded" in app.test_cli_runner().invoke(args=["seed-demo"]).output
        assert db.session.scalar(select(Category.name_en).where(Category.name == "蜂蜜")) == "Honey"
        terms = db.session.scalars(select(SearchSynonym.terms)).all()
        assert any("番薯" in t.split() and "地瓜" in t.split() for t in terms)
        assert db.session.scalar(
            select(func.count())
            .select_from(Product)
            .where(Product.status == ProductStatus.LISTED, Product.name.contains("红薯"))
        )
