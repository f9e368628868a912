"""Buyers racing for a presale's last units: the reserved quantity never passes the limit, and
every loser is told how many are left. PostgreSQL only: row locks under real concurrency, which
SQLite (one writer at a time) cannot show."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.catalog.models import Sku
from market.clock import today
from market.extensions import db
from market.orders.models import Order
from market.presales import services
from market.presales.models import Presale, PresaleReservation
from tests import factories
from tests.concurrency import all_at_once

pytestmark = pytest.mark.postgres_only

RACERS = 8
LIMIT = 5


def test_buyers_racing_for_the_last_units_never_pass_the_limit(app, world):
    with app.test_request_context():
        manager = db.session.get(User, world.other_coop_manager)
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.lychee))
        start = today() + timedelta(days=30)
        presale = services.open_presale(
            manager,
            sku_id=sku_id,
            harvest_from=start,
            harvest_to=start + timedelta(days=10),
            price_fen=12800,
            limit_quantity=LIMIT + 1,
        )
        presale_id = presale.id
        buyers = [
            factories.make_user(f"买家{n}", f"racer{n}@example.com").id for n in range(RACERS)
        ]
        db.session.commit()
    # One unit already gone: LIMIT left for RACERS buyers of one unit each.
    with app.test_request_context():
        services.reserve(
            db.session.get(User, world.buyer),
            presale_id,
            1,
            rollover_wanted=False,
            for_unit=False,
            delivery={
                "method": "delivery",
                "address_id": None,
                "recipient": "周买家",
                "phone": "13900000009",
                "region": "高州",
                "detail": "1号",
                "note": "",
            },
            idempotency_key=uuid.uuid4().hex,
        )

    def racer(user_id: int):
        return lambda: (
            services.reserve(
                db.session.get(User, user_id),
                presale_id,
                1,
                rollover_wanted=False,
                for_unit=False,
                delivery={
                    "method": "delivery",
                    "address_id": None,
                    "recipient": "买家",
                    "phone": "13900000001",
                    "region": "高州",
                    "detail": "2号",
                    "note": "",
                },
                idempotency_key=uuid.uuid4().hex,
            ).number
        )

    results = all_at_once(app, [racer(user_id) for user_id in buyers])
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == LIMIT and len(lost) == RACERS - LIMIT, results
    assert all(isinstance(error, services.OverLimit) for error in lost), lost
    assert all(str(error) == "预售已约满" for error in lost), lost
    with app.app_context():
        presale = db.session.get(Presale, presale_id)
        assert presale.reserved_quantity == presale.limit_quantity == LIMIT + 1
        reserved = db.session.scalar(
            select(func.sum(PresaleReservation.quantity)).where(
                PresaleReservation.presale_id == presale_id
            )
        )
        assert reserved == LIMIT + 1
        orders = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id.in_(buyers))
        )
        assert orders == LIMIT  # a loser placed no order
