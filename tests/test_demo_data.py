"""The demo data set: the real facts of shared/data kept exactly, filled up with generated rows that
say they are examples, to the programme's size, within the pairing rule, seeded only once."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from market.accounts.models import UnitRole, User
from market.catalog.models import Category, Product, ProductStatus, Sku
from market.demo import (
    DEMO_ACCOUNTS,
    DEMO_PASSWORD,
    ROUND_START,
    default_data_dir,
    seed_demo,
)
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.directory.services import (
    MAX_UNITS_PER_VILLAGE,
    MAX_VILLAGES_PER_UNIT,
    max_concurrent,
)
from market.extensions import db

DATA_DIR = default_data_dir()
PACKAGED_DATA_DIR = Path(__file__).resolve().parents[1] / "market" / "demo_data"


def rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def seeded(app: Flask):
    with app.app_context():
        assert seed_demo(DATA_DIR) is True
        yield app


def test_seeding_fills_the_programme_to_108_units_and_54_villages(seeded: Flask) -> None:
    with seeded.app_context():
        assert count(Unit) == 108
        assert count(Village) == 54
        listed = db.session.scalars(
            select(Product).where(Product.status == ProductStatus.LISTED)
        ).all()
        assert len(listed) >= 60
        assert all(product.skus and product.coop.approved for product in listed)
        used = {product.category_id for product in listed}
        assert used == set(db.session.scalars(select(Category.id)))
        assert all(
            sku.price_fen > 0 and 20 <= sku.stock <= 500 for sku in db.session.scalars(select(Sku))
        )


def test_every_product_of_products_csv_is_listed_under_its_village(seeded: Flask) -> None:
    with seeded.app_context():
        for row in rows("products.csv"):
            product = db.session.scalar(
                select(Product)
                .join(Coop)
                .join(Village)
                .where(Product.name == row["product"], Village.name == row["village"])
            )
            assert product is not None, row["product"]
            assert product.category.name == row["category"]
            assert product.status == ProductStatus.LISTED
            assert product.coop.village.town.name == row["town"]


def test_guding_has_two_coops_and_its_fish_come_from_the_pond_farm(seeded: Flask) -> None:
    with seeded.app_context():
        guding = db.session.scalar(select(Village).where(Village.name == "古丁村"))
        assert guding is not None and len(guding.coops) == 2
        fish = db.session.scalars(
            select(Product)
            .join(Category)
            .where(Category.name == "水产", Product.name == "氹仔草鲩")
        ).one()
        assert "塘鱼" in fish.coop.name


def test_the_nine_real_pairings_keep_their_dates_and_notes(seeded: Flask) -> None:
    with seeded.app_context():
        for row in rows("pairings.csv"):
            pairing = db.session.scalars(
                select(Pairing)
                .join(Unit)
                .join(Village)
                .where(Unit.name == row["unit"], Village.name == row["village"])
            ).one()
            assert pairing.since == date.fromisoformat(row["since"])
            expected_until = date.fromisoformat(row["until"]) if row["until"] else None
            assert pairing.until == expected_until
            assert pairing.note == row["note"]
            assert pairing.village.town.name == row["town"]
        shuaitang = db.session.scalar(select(Village).where(Village.name == "帅堂村"))
        assert shuaitang is not None and shuaitang.is_typical


def test_no_village_has_more_than_two_units_nor_a_unit_more_than_three_villages(
    seeded: Flask,
) -> None:
    with seeded.app_context():
        by_village: dict[int, list[tuple[date, date | None]]] = defaultdict(list)
        by_unit: dict[int, list[tuple[date, date | None]]] = defaultdict(list)
        for pairing in db.session.scalars(select(Pairing)):
            by_village[pairing.village_id].append((pairing.since, pairing.until))
            by_unit[pairing.unit_id].append((pairing.since, pairing.until))
        assert max(max_concurrent(spans) for spans in by_village.values()) <= MAX_UNITS_PER_VILLAGE
        assert max(max_concurrent(spans) for spans in by_unit.values()) <= MAX_VILLAGES_PER_UNIT
        # Every village has its two units in the current round; only generated units are left
        # without a village (the slots run out because 高州市委办 holds three).
        villages = db.session.scalars(select(Village)).all()
        assert all(len(v.current_units(ROUND_START)) == MAX_UNITS_PER_VILLAGE for v in villages)
        unpaired = [u.name for u in db.session.scalars(select(Unit)) if not u.pairings]
        assert all("示例" in name for name in unpaired)
        assert len(unpaired) <= 2


def test_generated_rows_say_they_are_examples(seeded: Flask) -> None:
    real_units = {row["unit"] for row in rows("pairings.csv")}
    real_villages = {
        row["village"]
        for name in ("pairings.csv", "villages-extra.csv", "products.csv")
        for row in rows(name)
    }
    with seeded.app_context():
        for unit in db.session.scalars(select(Unit)):
            assert unit.name in real_units or "示例" in unit.name
        for village in db.session.scalars(select(Village)):
            if village.name not in real_villages:
                assert "示例" in village.name and "示例数据" in village.story
                assert all("示例" in coop.name for coop in village.coops)
            else:
                assert village.story and "示例" not in village.story
        assert count(Town) >= len({row["town"] for row in rows("pairings.csv")})


def test_demo_accounts_sign_in_with_the_demo_password(seeded: Flask) -> None:
    with seeded.app_context():
        users = {}
        for email, description in DEMO_ACCOUNTS:
            user = db.session.scalar(select(User).where(User.email == email))
            assert user is not None and description
            assert user.check_password(DEMO_PASSWORD)
            assert not user.check_password("wrong-password")
            assert user.phone and len(user.phone) == 11 and user.phone.startswith("1")
            users[email.split("@")[0]] = user
        assert len({user.phone for user in users.values()}) == len(users)
        assert users["organizer"].is_organizer and not users["organizer"].is_admin
        assert users["admin"].is_admin and users["admin"].is_organizer
        for name, role in (
            ("coordinator", UnitRole.COORDINATOR),
            ("approver", UnitRole.APPROVER),
            ("employee", UnitRole.MEMBER),
        ):
            assert users[name].has_unit_role(role)
            assert users[name].unit is not None and users[name].unit.name == "高州市市场监管局"
        managed = users["coop"].managed_coops()
        assert [coop.village.name for coop in managed] == ["古丁村"]
        assert users["buyer"].unit is None and not users["buyer"].coop_memberships


def test_seeding_twice_changes_nothing_the_second_time(seeded: Flask) -> None:
    models = (Town, Village, Unit, Pairing, Coop, Category, Product, Sku, User)
    with seeded.app_context():
        before = {model.__name__: count(model) for model in models}
        assert seed_demo(DATA_DIR) is False
        assert {model.__name__: count(model) for model in models} == before


def test_the_packaged_copy_of_the_facts_matches_shared_data() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("no shared/data next to the repository")
    for name in ("pairings.csv", "villages-extra.csv", "products.csv"):
        assert (PACKAGED_DATA_DIR / name).read_bytes() == (shared / name).read_bytes(), name


def test_the_data_dir_can_be_chosen_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKET_DEMO_DATA_DIR", str(PACKAGED_DATA_DIR))
    assert default_data_dir() == PACKAGED_DATA_DIR
