"""The demo data holds a 荔枝 presale of 根子镇 (issue 16, point 5), open for reservations."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from market.clock import today
from market.demo import default_data_dir, seed_demo
from market.demo.presales import next_harvest
from market.extensions import db
from market.presales.models import Presale


def test_the_demo_has_an_open_lychee_presale_of_genzi(app, client):
    with app.app_context():
        assert seed_demo(default_data_dir()) is True
        [presale] = db.session.scalars(select(Presale)).all()
        product = presale.sku.product
        assert product.name == "白糖罂荔枝"
        assert product.coop.village.town.name == "根子镇"
        assert presale.status.value == "open"
        assert (presale.payment_kind.value, presale.deposit_fen, presale.price_fen) == (
            "deposit",
            2000,
            7900,
        )
        assert today() <= presale.harvest_from <= presale.harvest_to
        presale_id, product_id = presale.id, product.id
    page = client.get(f"/presales?product={product_id}").get_data(as_text=True)
    assert f'data-presale-id="{presale_id}"' in page
    detail = client.get(f"/presales/{presale_id}").get_data(as_text=True)
    assert "白糖罂荔枝" in detail and "剩余 300 份" in detail
    assert "定金 ¥20.00/份 · 尾款 ¥59.00/份" in detail


def test_the_next_harvest_is_the_coming_may():
    assert next_harvest(date(2026, 12, 3)) == (date(2027, 5, 10), date(2027, 6, 15))
    assert next_harvest(date(2027, 3, 1)) == (date(2027, 5, 10), date(2027, 6, 15))
    assert next_harvest(date(2027, 5, 10)) == (date(2028, 5, 10), date(2028, 6, 15))
