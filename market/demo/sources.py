"""Where the demo data is read from: the facts of shared/data (or the copy in market/demo_data)
and the invented catalog that ships with the package."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
_PACKAGED = Path(__file__).resolve().parents[1] / "demo_data"


def default_data_dir() -> Path:
    """Where the facts live: $MARKET_DEMO_DATA_DIR, the shared checkout next to the repository,
    or the copy shipped inside the package (so a clone without shared/ still seeds)."""
    configured = os.environ.get("MARKET_DEMO_DATA_DIR")
    if configured:
        return Path(configured)
    shared = _REPO.parent / "shared" / "data"
    if (shared / "pairings.csv").exists():
        return shared
    return _PACKAGED


# The demo catalog is invented content (prices, specs, descriptions), so it ships with the package
# rather than with the facts in shared/data. A row names its village; an empty village means "the
# next generated village". Rows for products.csv's products only add details: products.csv decides
# which of them exist and in which category. Only 高州荔枝 and 高州龙眼 carry 地理标志产品.
CATALOG_PATH = _PACKAGED / "catalog.csv"


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
    # The catalog's `certifications` column says 地理标志产品 for the GI lychee and longan: the
    # demo gives their co-ops a verified certificate (market/demo/certificates.py).
    geographical_indication: bool = False
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
            geographical_indication="地理标志" in row["certifications"],
            featured=row["featured"] == "1",
        )


def load_catalog(path: Path = CATALOG_PATH) -> list[ProductSeed]:
    return [ProductSeed.from_row(row) for row in read_csv(path)]


@dataclass(frozen=True)
class Source:
    """The rows of shared/data."""

    pairings: list[dict[str, str]]
    extra_villages: list[dict[str, str]]
    products: list[dict[str, str]]

    @classmethod
    def load(cls, data_dir: Path) -> Source:
        return cls(
            pairings=read_csv(data_dir / "pairings.csv"),
            extra_villages=read_csv(data_dir / "villages-extra.csv"),
            products=read_csv(data_dir / "products.csv"),
        )

    def village_keys(self) -> list[tuple[str, str]]:
        """(town, village) of every real village, in order of first mention."""
        rows = [*self.pairings, *self.extra_villages, *self.products]
        return list(dict.fromkeys((row["town"], row["village"]) for row in rows))

    def unit_names(self) -> list[str]:
        return list(dict.fromkeys(row["unit"] for row in self.pairings))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]
