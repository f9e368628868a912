"""The builders of the demo data, one per part (towns and villages, units and pairings, co-ops,
categories and products, accounts, the campaign), each adding its rows to the session that
`seed_demo` commits."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date

from market.accounts.models import CoopMembership, MembershipStatus, UnitMembership, User
from market.catalog.models import (
    Category,
    Product,
    ProductStatus,
    SearchSynonym,
    Sku,
    months_to_mask,
)
from market.demo.facts import (
    ACCOUNTS,
    CATEGORIES,
    DEMO_COOP_VILLAGE,
    DEMO_PASSWORD,
    DEMO_TARGET_FEN,
    DEMO_UNIT_NAME,
    EXTRA_TOWNS,
    GENERATED_NOTE,
    GENERATED_VILLAGE_STORY,
    REAL_COOPS,
    ROUND_START,
    SYNONYM_GROUPS,
    TOTAL_UNITS,
    TOTAL_VILLAGES,
    TYPICAL_VILLAGES,
    VILLAGE_STORIES,
)
from market.demo.sources import ProductSeed, SkuSeed, Source, load_catalog
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.directory.services import MAX_UNITS_PER_VILLAGE, MAX_VILLAGES_PER_UNIT
from market.extensions import db
from market.models import utcnow

# -- the campaign ---------------------------------------------------------------------------------


def seed_campaign(units: list[Unit]) -> None:
    """This year's 我为果农办实事 campaign with the same demo target for every unit, so the
    dashboards have something to measure against."""
    from market.campaign.models import Campaign, UnitTarget
    from market.clock import today

    year = today().year
    campaign = Campaign(
        name=f"{year}年“我为果农办实事”消费帮扶（示例）",
        year=year,
        starts_on=date(year, 1, 1),
        ends_on=date(year, 12, 31),
        paired_only=False,
        laggard_threshold_pct=60,
    )
    db.session.add(campaign)
    db.session.flush()
    db.session.add_all(
        UnitTarget(campaign_id=campaign.id, unit_id=unit.id, amount_fen=DEMO_TARGET_FEN)
        for unit in units
    )


# -- towns and villages ----------------------------------------------------------------------------
def seed_villages(source: Source) -> dict[str, Village]:
    """The real villages, then generated ones in the extra towns up to TOTAL_VILLAGES. Keyed by
    village name (unique across the demo), in creation order."""
    real = source.village_keys()
    towns = _seed_towns([town for town, _ in real] + list(EXTRA_TOWNS))
    villages: dict[str, Village] = {}
    for town, name in real:
        villages[name] = _add_village(
            towns[town],
            name,
            VILLAGE_STORIES.get(name, f"{town}{name}。"),
            is_typical=name in TYPICAL_VILLAGES,
        )
    for index in range(1, TOTAL_VILLAGES - len(real) + 1):
        town = towns[EXTRA_TOWNS[(index - 1) % len(EXTRA_TOWNS)]]
        name = f"示例村{index:02d}"
        villages[name] = _add_village(town, name, GENERATED_VILLAGE_STORY, is_typical=False)
    db.session.flush()
    return villages


def _seed_towns(names: Iterable[str]) -> dict[str, Town]:
    towns = {name: Town(name=name) for name in dict.fromkeys(names)}
    db.session.add_all(towns.values())
    return towns


def _add_village(town: Town, name: str, story: str, *, is_typical: bool) -> Village:
    village = Village(town=town, name=name, story=story, is_typical=is_typical)
    db.session.add(village)
    return village


# -- units and pairings ----------------------------------------------------------------------------
def seed_units(source: Source) -> list[Unit]:
    """The units of pairings.csv, then generated ones up to TOTAL_UNITS."""
    real = source.unit_names()
    units = [
        # Real units' addresses and numbers are not known: say so rather than invent them.
        Unit(name=name, address="高州市（详细地址待补充）", contact_phone="0668-0000000")
        for name in real
    ]
    units += [
        Unit(
            name=f"示例单位{index:03d}",
            address=f"高州市示例路{index}号（示例地址）",
            contact_phone=f"0668-{index:07d}",
        )
        for index in range(1, TOTAL_UNITS - len(real) + 1)
    ]
    db.session.add_all(units)
    db.session.flush()
    return units


def seed_real_pairings(source: Source, villages: dict[str, Village], units: list[Unit]) -> None:
    by_name = {unit.name: unit for unit in units}
    for row in source.pairings:
        db.session.add(
            Pairing(
                unit=by_name[row["unit"]],
                village=villages[row["village"]],
                since=date.fromisoformat(row["since"]),
                until=date.fromisoformat(row["until"]) if row["until"] else None,
                note=row["note"],
            )
        )


def pair_generated_units(villages: dict[str, Village], units: list[Unit]) -> None:
    """Each generated unit takes the village with the fewest units in the current round (ties:
    creation order), keeping the rule of at most two units per village and three villages per
    unit. There are 108 slots for 108 units, but 高州市委办 holds three villages, so the last
    generated units find no free village and stay unpaired; a real roster would decide."""
    order = list(villages.values())
    for unit in units:
        if _current_count(unit.pairings) >= MAX_VILLAGES_PER_UNIT:
            continue
        count, index = min((_current_count(v.pairings), i) for i, v in enumerate(order))
        if count >= MAX_UNITS_PER_VILLAGE:
            return  # every village is full
        # The relationship back-references keep village.pairings current for the next pick.
        db.session.add(
            Pairing(unit=unit, village=order[index], since=ROUND_START, note=GENERATED_NOTE)
        )


def _current_count(pairings: Iterable[Pairing]) -> int:
    """Pairings that still run at some day of the current round (open-ended from ROUND_START)."""
    return sum(1 for p in pairings if p.overlaps(ROUND_START, None))


# -- co-ops, categories and products ---------------------------------------------------------------
def seed_coops(villages: dict[str, Village]) -> dict[str, list[Coop]]:
    """One approved co-op per village (two for 古丁村), keyed by village name."""
    coops: dict[str, list[Coop]] = {}
    serial = 0  # numbers the placeholder phones and bank accounts
    for name, village in villages.items():
        specs = REAL_COOPS.get(name) or (
            (f"{name}种养专业合作社", f"{GENERATED_NOTE}：演示用合作社。"),
        )
        coops[name] = []
        for coop_name, intro in specs:
            serial += 1
            coops[name].append(_add_coop(village, coop_name, intro, serial))
    db.session.flush()
    return coops


def _add_coop(village: Village, name: str, intro: str, serial: int) -> Coop:
    coop = Coop(
        village=village,
        name=name,
        intro=intro,
        contact_phone=f"1390000{serial:04d}",
        settlement_account=f"中国农业银行高州支行 6228 4800 0000 {serial:04d}（示例）",
        approved=True,
    )
    db.session.add(coop)
    return coop


def seed_categories() -> dict[str, Category]:
    """Keyed by (Chinese) name, as products.csv and the catalog name them."""
    categories = {
        name: Category(name=name, slug=slug, sort_order=sort_order, name_en=name_en)
        for name, slug, sort_order, name_en in CATEGORIES
    }
    db.session.add_all(categories.values())
    db.session.add_all(SearchSynonym(terms=terms) for terms in SYNONYM_GROUPS)
    return categories


def seed_products(
    source: Source,
    coops: dict[str, list[Coop]],
    categories: dict[str, Category],
    rng: random.Random,
) -> None:
    catalog = load_catalog()
    details = {(seed.village, seed.name): seed for seed in catalog}
    named: set[tuple[str, str]] = set()
    for row in source.products:
        key = (row["village"], row["product"])
        named.add(key)
        seed = details.get(key) or _plain_seed(row)
        coop = _coop_for(coops[row["village"]], row["category"])
        _add_product(coop, seed, categories[row["category"]], rng)
    for seed in catalog:
        if seed.village and (seed.village, seed.name) not in named:
            _add_product(coops[seed.village][0], seed, categories[seed.category], rng)
    generated_coops = [found[0] for name, found in coops.items() if name.startswith("示例村")]
    generated_seeds = [seed for seed in catalog if not seed.village]
    # More seeds than generated villages would be dropped here; the catalog has fewer.
    for coop, seed in zip(generated_coops, generated_seeds, strict=False):
        _add_product(coop, seed, categories[seed.category], rng)


def _plain_seed(row: dict[str, str]) -> ProductSeed:
    """A products.csv row the catalog has no details for (the file may grow): list it plainly."""
    return ProductSeed(
        village=row["village"],
        name=row["product"],
        category=row["category"],
        description=f"{row['village']}的{row['product']}。",
        origin_story=f"{row['product']}是{row['village']}的土特产之一。",
        skus=(SkuSeed("标准装", 5000, 1000),),
    )


def _coop_for(village_coops: list[Coop], category_name: str) -> Coop:
    # 古丁村's pond fish belong to its family farm, everything else to the village's first co-op.
    if category_name == "水产" and len(village_coops) > 1:
        return village_coops[1]
    return village_coops[0]


def _add_product(coop: Coop, seed: ProductSeed, category: Category, rng: random.Random) -> Product:
    product = Product(
        coop=coop,
        category=category,
        name=seed.name,
        description=seed.description,
        origin_story=seed.origin_story,
        season_mask=months_to_mask(list(seed.months)),
        shelf_life_days=seed.shelf_life_days,
        status=ProductStatus.LISTED,
        featured=seed.featured,
    )
    product.skus = [
        Sku(spec=s.spec, price_fen=s.price_fen, stock=rng.randint(20, 500), weight_g=s.weight_g)
        for s in seed.skus
    ]
    db.session.add(product)
    return product


# -- accounts --------------------------------------------------------------------------------------
def seed_accounts(units: list[Unit], coops: dict[str, list[Coop]]) -> None:
    unit = next(u for u in units if u.name == DEMO_UNIT_NAME)
    coop = coops[DEMO_COOP_VILLAGE][0]
    for account in ACCOUNTS:
        user = User(
            name=account.name,
            email=account.email,
            phone=account.phone,
            is_organizer=account.is_organizer,
            is_admin=account.is_admin,
            is_finance=account.is_finance,
        )
        user.set_password(DEMO_PASSWORD)
        if account.unit_role is not None:
            user.unit_memberships.append(
                UnitMembership(
                    unit=unit,
                    role=account.unit_role,
                    status=MembershipStatus.CONFIRMED,
                    confirmed_at=utcnow(),
                )
            )
        if account.coop_role is not None:
            user.coop_memberships.append(CoopMembership(coop=coop, role=account.coop_role))
        db.session.add(user)
