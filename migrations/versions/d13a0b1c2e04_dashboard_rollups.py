"""dashboard rollups: distinct orders and buyers per unit

Revision ID: d13a0b1c2e04
Revises: c12d0e3f7a03
Create Date: 2026-12-02 10:30:00.000000

The dashboard rollups of market.campaign.rollups, keyed by unit, unit and day, village,
category, product and day, and the first sale of each order and buyer per unit with its
counters; backfilled from the ledger with the SQL below (the same figures as
market.campaign.rollups.ledger_selects, which `flask campaign rebuild-rollups` uses).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "d13a0b1c2e04"
down_revision = "c12d0e3f7a03"
branch_labels = None
depends_on = None


def _sums(*names):
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


TABLES = {
    "attribution_firsts": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(length=20), nullable=False),
            sa.Column("unit_id", sa.Integer(), nullable=False),
            sa.Column("ref_id", sa.Integer(), nullable=False),
        ],
        ("campaign_id", "kind", "unit_id", "ref_id"),
    ),
    "attribution_counts": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("kind", sa.String(length=20), nullable=False),
            sa.Column("unit_id", sa.Integer(), nullable=False),
            sa.Column("total", sa.Integer(), nullable=False),
        ],
        ("campaign_id", "kind", "unit_id"),
    ),
    "attribution_unit_totals": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("unit_id", sa.Integer(), nullable=False),
            *_sums("amount_fen", "paired_fen", "quantity", "referral_fen"),
        ],
        ("campaign_id", "unit_id"),
    ),
    "attribution_unit_days": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            sa.Column("unit_id", sa.Integer(), nullable=False),
            *_sums("amount_fen", "paired_fen"),
        ],
        ("campaign_id", "day", "unit_id"),
    ),
    "attribution_village_totals": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("village_id", sa.Integer(), nullable=False),
            *_sums("amount_fen", "attributed_fen", "paired_fen", "quantity"),
        ],
        ("campaign_id", "village_id"),
    ),
    "attribution_category_totals": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("category_id", sa.Integer(), nullable=False),
            *_sums("amount_fen", "quantity"),
        ],
        ("campaign_id", "category_id"),
    ),
    "attribution_product_totals": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("product_id", sa.Integer(), nullable=False),
            *_sums("amount_fen", "quantity"),
        ],
        ("campaign_id", "product_id"),
    ),
    "attribution_day_totals": (
        [
            sa.Column("campaign_id", sa.Integer(), nullable=False),
            sa.Column("day", sa.Date(), nullable=False),
            *_sums("amount_fen"),
        ],
        ("campaign_id", "day"),
    ),
}

PAIRED = "CASE WHEN paired THEN amount_fen ELSE 0 END"
IN_CAMPAIGN = "FROM attribution_entries WHERE campaign_id IS NOT NULL"
SALE = "FROM attribution_entries WHERE campaign_id IS NOT NULL AND amount_fen > 0"
CREDITED = f"{SALE} AND unit_id IS NOT NULL"

BACKFILL = [
    "INSERT INTO attribution_unit_totals "
    "(campaign_id, unit_id, amount_fen, paired_fen, quantity, referral_fen) "
    f"SELECT campaign_id, coalesce(unit_id, 0), sum(amount_fen), sum({PAIRED}), sum(quantity), "
    "sum(CASE WHEN basis = 'referral' THEN amount_fen ELSE 0 END) "
    f"{IN_CAMPAIGN} GROUP BY campaign_id, coalesce(unit_id, 0)",
    "INSERT INTO attribution_unit_days (campaign_id, day, unit_id, amount_fen, paired_fen) "
    f"SELECT campaign_id, day, coalesce(unit_id, 0), sum(amount_fen), sum({PAIRED}) "
    f"{IN_CAMPAIGN} GROUP BY campaign_id, day, coalesce(unit_id, 0)",
    "INSERT INTO attribution_village_totals "
    "(campaign_id, village_id, amount_fen, attributed_fen, paired_fen, quantity) "
    "SELECT campaign_id, village_id, sum(amount_fen), "
    f"sum(CASE WHEN unit_id IS NOT NULL THEN amount_fen ELSE 0 END), sum({PAIRED}), "
    f"sum(quantity) {IN_CAMPAIGN} GROUP BY campaign_id, village_id",
    "INSERT INTO attribution_category_totals (campaign_id, category_id, amount_fen, quantity) "
    f"SELECT campaign_id, category_id, sum(amount_fen), sum(quantity) {IN_CAMPAIGN} "
    "GROUP BY campaign_id, category_id",
    "INSERT INTO attribution_product_totals (campaign_id, product_id, amount_fen, quantity) "
    f"SELECT campaign_id, product_id, sum(amount_fen), sum(quantity) {IN_CAMPAIGN} "
    "GROUP BY campaign_id, product_id",
    "INSERT INTO attribution_day_totals (campaign_id, day, amount_fen) "
    f"SELECT campaign_id, day, sum(amount_fen) {IN_CAMPAIGN} GROUP BY campaign_id, day",
    # The first sale of each order and buyer: an order or buyer counts once it has an entry with
    # amount > 0 (refunds never uncount it); unit_id 0 with the campaign_* kinds: any unit or none.
    "INSERT INTO attribution_firsts (campaign_id, kind, unit_id, ref_id) "
    f"SELECT campaign_id, 'campaign_order', 0, order_id {SALE} "
    f"UNION SELECT campaign_id, 'campaign_buyer', 0, buyer_id {SALE} "
    f"UNION SELECT campaign_id, 'order', unit_id, order_id {CREDITED} "
    f"UNION SELECT campaign_id, 'buyer', unit_id, buyer_id {CREDITED} "
    f"UNION SELECT campaign_id, 'referral_order', unit_id, order_id {CREDITED} "
    "AND basis = 'referral' "
    f"UNION SELECT campaign_id, 'own_buyer', unit_id, buyer_id {CREDITED} "
    "AND mode NOT IN ('unit_purchase', 'custom')",
    "INSERT INTO attribution_counts (campaign_id, kind, unit_id, total) "
    "SELECT campaign_id, kind, unit_id, count(*) FROM attribution_firsts "
    "GROUP BY campaign_id, kind, unit_id",
]


def upgrade():
    for name, (columns, key) in TABLES.items():
        op.create_table(name, *columns, sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{name}")))
    for statement in BACKFILL:
        op.execute(statement)


def downgrade():
    for name in reversed(TABLES):
        op.drop_table(name)
