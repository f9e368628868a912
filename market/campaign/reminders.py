"""The organizer reminds a lagging unit (提醒约谈): its coordinators are told, and it is audited."""

from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from market.accounts.models import User
from market.audit import services as audit
from market.campaign.models import Campaign
from market.campaign.read.filters import clamp_to_campaign
from market.campaign.read.laggards import laggards_on
from market.errors import DomainError, NotFound
from market.extensions import db
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify


def remind_laggard(organizer: User, campaign_id: int, unit_id: int, on: date) -> int:
    """Tell the coordinators of a unit on the campaign's laggard list as of `on` how far it is
    behind, linking to their progress page. Only a unit on the list, with coordinators; returns
    how many were told."""
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(_("找不到该活动"))
    on = clamp_to_campaign(campaign, on)
    laggard = next((g for g in laggards_on(campaign, on).laggards if g.unit_id == unit_id), None)
    if laggard is None:
        raise DomainError(_("该单位不在提醒约谈名单上"))
    coordinators = recipients.unit_coordinator_ids(unit_id)
    if not coordinators:
        raise DomainError(_("该单位还没有联络员，无法提醒"))
    notify(
        coordinators,
        "campaign.laggard",
        _l("%(campaign)s：本单位进度落后，请加快", campaign=campaign.name),
        _l(
            "截至 %(day)s 已完成 %(counted)s，提醒线为 %(threshold)s，还差 %(shortfall)s。",
            day=on.isoformat(),
            counted=format_fen(laggard.counted_fen),
            threshold=format_fen(laggard.threshold_fen),
            shortfall=format_fen(laggard.shortfall_fen),
        ),
        recipients.link_to("dashboards.unit_progress", campaign=campaign.id),
    )
    audit.record(
        organizer,
        "laggard.reminded",
        ("Unit", unit_id),
        after={
            "campaign_id": campaign.id,
            "on": on,
            "counted_fen": laggard.counted_fen,
            "threshold_fen": laggard.threshold_fen,
            "coordinators": len(coordinators),
        },
    )
    db.session.commit()
    return len(coordinators)
