"""Demo data: the real pairings, villages and products named in public reporting, filled up with
clearly marked generated ones (示例) to the programme's size of 108 units and 54 villages.

Everything is created in one transaction and only once: a second call finds the demo organizer and
changes nothing.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.catalog.models import (
    Category,
    Product,
    ProductStatus,
    SearchSynonym,
    Sku,
    months_to_mask,
)
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.directory.services import MAX_UNITS_PER_VILLAGE, MAX_VILLAGES_PER_UNIT
from market.extensions import db
from market.models import utcnow

DEMO_PASSWORD = "demo-pass-2026"
ORGANIZER_EMAIL = "organizer@example.com"

# The programme pairs 108 city-level units with 54 key villages (see shared/data/README.md).
TOTAL_UNITS = 108
TOTAL_VILLAGES = 54
# The kick-off meeting of the current round (9月3日; the year is assumed, as in the README).
ROUND_START = date(2024, 9, 3)

GENERATED_NOTE = "示例数据"
DEMO_UNIT_NAME = "高州市市场监管局"
# The village whose first co-op the demo co-op manager runs (its products come from products.csv).
DEMO_COOP_VILLAGE = "古丁村"
# That co-op's name, as REAL_COOPS lists it first for the village and seed-demo prints it.
DEMO_COOP_NAME = "高州市古丁南药种植专业合作社"

_REPO = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Where the facts live: $MARKET_DEMO_DATA_DIR, the shared checkout next to the repository,
    or the copy shipped inside the package (so a clone without shared/ still seeds)."""
    configured = os.environ.get("MARKET_DEMO_DATA_DIR")
    if configured:
        return Path(configured)
    shared = _REPO.parent / "shared" / "data"
    if (shared / "pairings.csv").exists():
        return shared
    return Path(__file__).resolve().parent / "demo_data"


# -- accounts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    phone: str
    description: str
    is_organizer: bool = False
    is_admin: bool = False
    is_finance: bool = False
    unit_role: UnitRole | None = None
    coop_role: CoopRole | None = None


_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        ORGANIZER_EMAIL,
        "市直机关工委 张组织",
        "13800000001",
        "活动组织方（市直机关工委）：维护单位、村和结对，设定目标，查看看板和导出",
        is_organizer=True,
    ),
    DemoAccount(
        "finance@example.com",
        "消费帮扶服务中心 孙财务",
        "13800000009",
        "财务（消费帮扶服务中心）：确认到账、办理退款、出结算单并向合作社付款",
        is_finance=True,
    ),
    DemoAccount(
        "admin@example.com",
        "系统管理员 李管理",
        "13800000002",
        "系统管理员，兼活动组织方",
        is_organizer=True,
        is_admin=True,
    ),
    DemoAccount(
        "coordinator@example.com",
        "王联络",
        "13800000003",
        f"单位联络员（{DEMO_UNIT_NAME}）：发起团购、以买代帮、产品定制，管理成员",
        unit_role=UnitRole.COORDINATOR,
    ),
    DemoAccount(
        "approver@example.com",
        "陈审批",
        "13800000004",
        f"单位审批人（{DEMO_UNIT_NAME}）：审批单位采购",
        unit_role=UnitRole.APPROVER,
    ),
    DemoAccount(
        "employee@example.com",
        "刘职工",
        "13800000005",
        f"单位职工（{DEMO_UNIT_NAME}）：购买、参加团购",
        unit_role=UnitRole.MEMBER,
    ),
    DemoAccount(
        "coop@example.com",
        "黄社长",
        "13800000006",
        f"合作社管理员（{DEMO_COOP_NAME}）：上架商品、管理库存、发货",
        coop_role=CoopRole.MANAGER,
    ),
    DemoAccount(
        "buyer@example.com",
        "赵买家",
        "13800000007",
        "普通买家（未加入任何单位）",
    ),
)

DEMO_ACCOUNTS: list[tuple[str, str]] = [(a.email, a.description) for a in _ACCOUNTS]


# -- directory facts -------------------------------------------------------------------------------
# Real 高州 towns that host the generated villages (none of the real villages is in them).
EXTRA_TOWNS = (
    "分界镇",
    "石鼓镇",
    "长坡镇",
    "平山镇",
    "大井镇",
    "沙田镇",
    "荷塘镇",
    "东岸镇",
    "云潭镇",
    "泗水镇",
)

# pairings.csv: "帅堂村 is a provincial first-batch 典型村"; 荷垌村 is only being cultivated as one.
TYPICAL_VILLAGES = frozenset({"帅堂村"})

# Stories say only what shared/data states; nothing more precise is known.
VILLAGE_STORIES = {
    "朗练村": "马贵镇朗练村是结对共建的村之一，自9月3日结对共建启动起由高州市政协结对帮扶。",
    "帅堂村": "曹江镇帅堂村是广东省首批典型村之一。上一轮结对共建中由高州市林业局结对帮扶。",
    "荷垌村": "曹江镇荷垌村正在培育成为典型村，同时参与佛山、茂名两地的佛茂协作。"
    "本轮由高州市林业局结对共建。",
    "耀新村": "深镇镇耀新村由高州市投资促进中心和茂名石化高州分公司两家单位共同结对共建。",
    "古丁村": "古丁镇古丁村出产藿香、益智等南药，还有高山红薯和原生态蜂蜜；"
    "村里传统的塘鱼有氹仔草鲩和活水塘鲺。本轮由高州市市场监管局结对共建。",
    "程村村": "宝光街道程村村是高州市委办自己选定的结对村。",
    "元坝村": "根子镇元坝村所在的根子镇以荔枝、龙眼闻名。本轮由高州市委办结对共建。",
    "柏桥村": "根子镇柏桥村所在的根子镇以荔枝、龙眼闻名。本轮由高州市委办结对共建。",
    "彭村村": "南塘镇彭村村以荷花为特色，发展“荷花经济”。",
}
GENERATED_VILLAGE_STORY = "示例数据：演示用的示例村，不对应真实的村庄。"

# Co-ops of the real villages. 古丁村 has two: its herbs co-op and a family farm for the pond fish.
REAL_COOPS: dict[str, tuple[tuple[str, str], ...]] = {
    "古丁村": (
        (
            DEMO_COOP_NAME,
            "组织村民种植、晾晒藿香和益智等南药，兼营高山红薯和原生态蜂蜜。",
        ),
        ("古丁村塘鱼养殖家庭农场", "养殖古丁村传统的塘鱼：氹仔草鲩和活水塘鲺，鲜活配送。"),
    ),
    "朗练村": (("高州市马贵朗练农产品专业合作社", "收购、加工和销售朗练村的农产品。"),),
    "帅堂村": (("高州市曹江帅堂种养专业合作社", "组织帅堂村的种植和养殖，统一分拣包装。"),),
    "荷垌村": (("高州市曹江荷垌农业专业合作社", "组织荷垌村的种植，统一收购和销售。"),),
    "耀新村": (("高州市深镇耀新果蔬专业合作社", "收购和销售耀新村的水果、南药和番薯。"),),
    "程村村": (("高州市宝光程村农副产品专业合作社", "组合结对村的土特产，做成礼盒销售。"),),
    "元坝村": (("高州市根子元坝荔枝龙眼专业合作社", "组织元坝村荔枝、龙眼的采摘、预冷和发货。"),),
    "柏桥村": (("高州市根子柏桥水果专业合作社", "组织柏桥村荔枝、龙眼的采摘和加工。"),),
    "彭村村": (("高州市南塘彭村荷花专业合作社", "围绕荷花经济，销售莲子、莲藕和荷叶茶。"),),
}


# -- catalog facts ---------------------------------------------------------------------------------
CATEGORIES = (  # name, slug, sort order, the English UI's name
    ("水果", "fruit", 10, "Fruit"),
    ("薯类", "shu", 20, "Sweet potatoes & tubers"),
    ("蜂蜜", "honey", 30, "Honey"),
    ("南药", "herbs", 40, "Southern herbs"),
    ("水产", "fish", 50, "Fish & aquatic"),
    ("蔬菜", "veg", 60, "Vegetables"),
    ("粮油", "grain", 70, "Grain & oil"),
    ("加工品", "processed", 80, "Processed foods"),
    ("礼盒", "giftbox", 90, "Gift boxes"),
)

# Search synonyms (同义词): names people use for the same thing; the organizer keeps the list.
SYNONYM_GROUPS = (
    "红薯 番薯 地瓜 甘薯",
    "荔枝 妃子笑 桂味 糯米糍 白糖罂 黑叶",
    "龙眼 桂圆",
    "藿香 广藿香",
    "草鲩 草鱼 鲩鱼",
)

# The demo catalog is invented content (prices, specs, descriptions), so it ships with the package
# rather than with the facts in shared/data. A row names its village; an empty village means "the
# next generated village". Rows for products.csv's products only add details: products.csv decides
# which of them exist and in which category. Only 高州荔枝 and 高州龙眼 carry 地理标志产品.
CATALOG_PATH = Path(__file__).resolve().parent / "demo_data" / "catalog.csv"


@dataclass(frozen=True)
class SkuSeed:
    spec: str
    price_fen: int
    weight_g: int


@dataclass(frozen=True)
class ProductSeed:
    village: str
    name: str
    category: str  # the category's (Chinese) name
    description: str
    origin_story: str
    skus: tuple[SkuSeed, ...]
    months: tuple[int, ...] = ()  # empty: sold all year
    shelf_life_days: int | None = None
    certifications: str = ""
    featured: bool = False

    @classmethod
    def from_row(cls, row: dict[str, str]) -> ProductSeed:
        """skus are "spec:price_fen:weight_g|..."; months are space-separated numbers."""
        skus = []
        for item in row["skus"].split("|"):
            spec, price_fen, weight_g = item.rsplit(":", 2)
            skus.append(SkuSeed(spec, int(price_fen), int(weight_g)))
        return cls(
            village=row["village"],
            name=row["product"],
            category=row["category"],
            description=row["description"],
            origin_story=row["origin_story"],
            skus=tuple(skus),
            months=tuple(int(m) for m in row["months"].split()),
            shelf_life_days=int(row["shelf_life_days"]) if row["shelf_life_days"] else None,
            certifications=row["certifications"],
            featured=row["featured"] == "1",
        )


def load_catalog(path: Path = CATALOG_PATH) -> list[ProductSeed]:
    return [ProductSeed.from_row(row) for row in _read_csv(path)]


# -- seeding ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """The rows of shared/data."""

    pairings: list[dict[str, str]]
    extra_villages: list[dict[str, str]]
    products: list[dict[str, str]]

    @classmethod
    def load(cls, data_dir: Path) -> _Source:
        return cls(
            pairings=_read_csv(data_dir / "pairings.csv"),
            extra_villages=_read_csv(data_dir / "villages-extra.csv"),
            products=_read_csv(data_dir / "products.csv"),
        )

    def village_keys(self) -> list[tuple[str, str]]:
        """(town, village) of every real village, in order of first mention."""
        rows = [*self.pairings, *self.extra_villages, *self.products]
        return list(dict.fromkeys((row["town"], row["village"]) for row in rows))

    def unit_names(self) -> list[str]:
        return list(dict.fromkeys(row["unit"] for row in self.pairings))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]


def seed_demo(data_dir: Path | None = None) -> bool:
    """Create the demo directory, catalog and accounts once. False, and nothing changed, when
    the demo organizer already exists. `data_dir` holds the facts (default_data_dir())."""
    if db.session.scalar(select(User.id).where(User.email == ORGANIZER_EMAIL)) is not None:
        return False
    source = _Source.load(data_dir or default_data_dir())
    rng = random.Random(2024)  # stock levels: varied but the same on every run
    try:
        villages = _seed_villages(source)
        units = _seed_units(source)
        _seed_real_pairings(source, villages, units)
        _pair_generated_units(villages, units[len(source.unit_names()) :])
        coops = _seed_coops(villages)
        categories = _seed_categories()
        _seed_products(source, coops, categories, rng)
        _seed_accounts(units, coops)
        _seed_campaign(units)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return True


# -- the campaign ---------------------------------------------------------------------------------
DEMO_TARGET_FEN = 2_000_000  # ¥20,000 per unit: a demo figure, not a published one


def _seed_campaign(units: list[Unit]) -> None:
    """This year's 我为果农办实事 campaign with the same demo target for every unit, so the
    dashboards have something to measure against."""
    from market.campaign.models import Campaign, UnitTarget
    from market.models import utcnow

    year = utcnow().year
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
def _seed_villages(source: _Source) -> dict[str, Village]:
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
def _seed_units(source: _Source) -> list[Unit]:
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


def _seed_real_pairings(source: _Source, villages: dict[str, Village], units: list[Unit]) -> None:
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


def _pair_generated_units(villages: dict[str, Village], units: list[Unit]) -> None:
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
def _seed_coops(villages: dict[str, Village]) -> dict[str, list[Coop]]:
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


def _seed_categories() -> dict[str, Category]:
    """Keyed by (Chinese) name, as products.csv and the catalog name them."""
    categories = {
        name: Category(name=name, slug=slug, sort_order=sort_order, name_en=name_en)
        for name, slug, sort_order, name_en in CATEGORIES
    }
    db.session.add_all(categories.values())
    db.session.add_all(SearchSynonym(terms=terms) for terms in SYNONYM_GROUPS)
    return categories


def _seed_products(
    source: _Source,
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
        certifications=seed.certifications,
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
def _seed_accounts(units: list[Unit], coops: dict[str, list[Coop]]) -> None:
    unit = next(u for u in units if u.name == DEMO_UNIT_NAME)
    coop = coops[DEMO_COOP_VILLAGE][0]
    for account in _ACCOUNTS:
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
