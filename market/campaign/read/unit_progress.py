"""A unit's own page: its row of the organizer's table, its members' participation and what its
referral link brought, for a campaign."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, distinct, func, select

from market.accounts.models import MembershipStatus, UnitMembership
from market.campaign.models import (
    AttributionFirst,
    AttributionRollup,
    Campaign,
    Distinct,
    ReferralVisit,
    UnitTotal,
)
from market.campaign.read.dashboard import UnitRow, VillageRow, unit_rows
from market.campaign.read.filters import Filters, as_int, counters, paired_amount, rollups_in
from market.clock import day_end, day_start
from market.directory.models import Town, Village
from market.extensions import db

R = AttributionRollup


@dataclass
class UnitProgress:
    campaign: Campaign
    row: UnitRow
    units_ranked: int  # how many units the rank is out of
    members: int  # confirmed members now
    member_buyers: int  # of whom bought with their own money (not unit orders) in the campaign
    villages: list[VillageRow]  # where the unit's purchases came from
    referral_visits: int
    referral_orders: int
    referral_fen: int

    @property
    def participation_pct(self) -> float | None:
        return self.member_buyers * 100 / self.members if self.members else None


def progress_of(campaign: Campaign, unit_id: int) -> UnitProgress:
    """A unit's progress in a campaign: its row of the organizer's table, its members'
    participation and what its referral link brought."""
    filters = Filters(campaign.id)
    rows = unit_rows(campaign, filters, with_counts=False)
    row = next(r for r in rows if r.unit_id == unit_id)
    # The whole campaign's counters: orders, buyers and orders through the referral link.
    kinds = (Distinct.ORDER, Distinct.BUYER, Distinct.REFERRAL_ORDER)
    counts = counters(campaign.id, kinds, unit_id)
    row.orders, row.buyers, referral_orders = (counts.get((k, unit_id), 0) for k in kinds)
    members = select(UnitMembership.user_id).where(
        UnitMembership.unit_id == unit_id, UnitMembership.status == MembershipStatus.CONFIRMED
    )
    member_count = select(func.count()).select_from(members.subquery())
    # Members who bought with their own money (a unit purchase or custom order is the unit's,
    # not its coordinator's, though the coordinator placed it): one look-up per member.
    member_buyers = (
        select(func.count(distinct(UnitMembership.user_id)))
        .join(
            AttributionFirst,
            and_(
                AttributionFirst.campaign_id == campaign.id,
                AttributionFirst.kind == Distinct.OWN_BUYER.value,
                AttributionFirst.unit_id == unit_id,
                AttributionFirst.ref_id == UnitMembership.user_id,
            ),
        )
        .where(
            UnitMembership.unit_id == unit_id, UnitMembership.status == MembershipStatus.CONFIRMED
        )
    )
    start, end = day_start(campaign.starts_on), day_end(campaign.ends_on)
    visits = select(func.count(ReferralVisit.id)).where(
        ReferralVisit.unit_id == unit_id, ReferralVisit.at >= start, ReferralVisit.at < end
    )
    referral_fen = select(UnitTotal.referral_fen).where(
        UnitTotal.campaign_id == campaign.id, UnitTotal.unit_id == unit_id
    )
    # Four figures of four tables, read in one statement.
    member_count, member_buyers, visits, referral_fen = db.session.execute(
        select(*(q.scalar_subquery() for q in (member_count, member_buyers, visits, referral_fen)))
    ).one()
    by_village = {
        village_id: (as_int(net), as_int(paired), as_int(quantity))
        for village_id, net, paired, quantity in db.session.execute(
            rollups_in(
                filters,
                R.village_id,
                func.sum(R.amount_fen),
                paired_amount(),
                func.sum(R.quantity),
            )
            .where(R.unit_id == unit_id)
            .group_by(R.village_id)
        )
    }
    villages = []
    if by_village:
        for village_id, name, town_id, town in db.session.execute(
            select(Village.id, Village.name, Town.id, Town.name)
            .join(Village.town)
            .where(Village.id.in_(by_village))
        ):
            net, paired, quantity = by_village[village_id]
            villages.append(VillageRow(village_id, name, town_id, town, net, net, paired, quantity))
        villages.sort(key=lambda v: (-v.net_fen, v.name))
    return UnitProgress(
        campaign=campaign,
        row=row,
        units_ranked=len(rows),
        members=as_int(member_count),
        member_buyers=as_int(member_buyers),
        villages=villages,
        referral_visits=as_int(visits),
        referral_orders=as_int(referral_orders),
        referral_fen=as_int(referral_fen),
    )
