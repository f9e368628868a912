"""What is mine: notifications (list, mark read), and for a unit's coordinator the unit's
campaign progress and referral link (the same rule as /unit/campaign)."""

from __future__ import annotations

from flask import abort, url_for
from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market import clock
from market.api.blueprint import blueprint
from market.api.paging import from_pagination
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.campaign.read.filters import current_campaign
from market.campaign.read.unit_progress import progress_of
from market.notifications import services as notifications
from market.security.access import Access, requires

blp = blueprint("api_me", "My notifications and my unit's campaign")


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    title = fields.String(required=True, metadata={"description": "in the request's language"})
    body = fields.String(required=True)
    link = fields.String(required=True, metadata={"description": "the site's page to act on"})
    read = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class NotificationArgsSchema(PageArgsSchema):
    pass


class ReadAllSchema(Schema):
    marked = fields.Integer(required=True)
    unread = fields.Integer(required=True)


class VillageShareSchema(Schema):
    village_id = fields.Integer(required=True)
    name = fields.String(required=True)
    net = fields.Nested(MoneySchema, required=True)
    paired = fields.Nested(MoneySchema, required=True)


class CampaignProgressSchema(Schema):
    unit_id = fields.Integer(required=True)
    unit_name = fields.String(required=True)
    referral_url = fields.String(required=True)
    referral_code = fields.String(required=True)
    campaign_id = fields.Integer(allow_none=True, required=True)
    campaign_name = fields.String(allow_none=True, required=True)
    target = fields.Nested(MoneySchema, allow_none=True, required=True)
    net = fields.Nested(MoneySchema, allow_none=True, required=True)
    paired = fields.Nested(MoneySchema, allow_none=True, required=True)
    counted = fields.Nested(MoneySchema, allow_none=True, required=True)
    percent_of_target = fields.Float(allow_none=True, required=True)
    rank = fields.Integer(allow_none=True, required=True)
    units_ranked = fields.Integer(allow_none=True, required=True)
    orders = fields.Integer(allow_none=True, required=True)
    buyers = fields.Integer(allow_none=True, required=True)
    members = fields.Integer(allow_none=True, required=True)
    member_buyers = fields.Integer(allow_none=True, required=True)
    referral_visits = fields.Integer(allow_none=True, required=True)
    referral_orders = fields.Integer(allow_none=True, required=True)
    referral_sales = fields.Nested(MoneySchema, allow_none=True, required=True)
    villages = fields.List(fields.Nested(VillageShareSchema), required=True)


def dump_notification(item) -> dict:
    return {
        "id": item.id,
        "kind": item.kind,
        "title": item.shown_title,
        "body": item.shown_body,
        "link": item.link,
        "read": item.is_read,
        "created_at": local_time(item.created_at),
    }


@blp.route("/notifications", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.arguments(NotificationArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(NotificationSchema, "NotificationPage"))
@blp.alt_response(401, schema=ErrorSchema)
def notification_list(args):
    """My notifications, newest first, in my language; paged, with a Link header."""
    page = notifications.recent(current_user.id, args["page"], per_page=args["per_page"])
    return from_pagination(page, dump_notification)


@blp.route("/notifications/<int:notification_id>/read", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, NotificationSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(404, schema=ErrorSchema)
def mark_read(notification_id: int):
    """Mark one of my notifications read (again: no change); someone else's is 404."""
    return dump_notification(notifications.mark_read(current_user, notification_id))


@blp.route("/notifications/read-all", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, ReadAllSchema)
@blp.alt_response(401, schema=ErrorSchema)
def mark_all_read():
    """Mark every notification of mine read."""
    marked = notifications.mark_all_read(current_user)
    return {"marked": marked, "unread": notifications.unread_count(current_user.id)}


class CampaignArgsSchema(Schema):
    campaign_id = fields.Integer(
        validate=validate.Range(1, 2**31 - 1),
        metadata={"description": "a past campaign; the current one by default"},
    )


@blp.route("/unit/campaign", methods=["GET"])
@requires(Access.COORDINATOR)
@blp.arguments(CampaignArgsSchema, location="query", unknown=RAISE)
@blp.response(200, CampaignProgressSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(403, schema=ErrorSchema)
@blp.alt_response(404, schema=ErrorSchema)
def unit_campaign(args):
    """My unit's progress in the campaign (its row of the organizers' table, members, where
    its purchases came from, what its referral link brought) and the referral link itself."""
    from market.campaign.models import Campaign
    from market.extensions import db

    unit = current_user.unit
    if unit is None:
        abort(404)
    if args.get("campaign_id"):
        campaign = db.session.get(Campaign, args["campaign_id"])
        if campaign is None:
            abort(404)
    else:
        campaign = current_campaign(clock.today())
    body = {
        "unit_id": unit.id,
        "unit_name": unit.name,
        "referral_url": url_for("campaign.referral", code=unit.referral_code, _external=True),
        "referral_code": unit.referral_code,
        "campaign_id": None,
        "campaign_name": None,
        "villages": [],
    }
    empty = (
        "target net paired counted percent_of_target rank units_ranked orders buyers members"
        " member_buyers referral_visits referral_orders referral_sales"
    )
    body.update(dict.fromkeys(empty.split()))
    if campaign is None:
        return body
    progress = progress_of(campaign, unit.id)
    row = progress.row
    body.update(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        target=money(row.target_fen),
        net=money(row.net_fen),
        paired=money(row.paired_fen),
        counted=money(row.counted_fen),
        percent_of_target=round(row.pct, 2) if row.pct is not None else None,
        rank=row.rank,
        units_ranked=progress.units_ranked,
        orders=row.orders,
        buyers=row.buyers,
        members=progress.members,
        member_buyers=progress.member_buyers,
        referral_visits=progress.referral_visits,
        referral_orders=progress.referral_orders,
        referral_sales=money(progress.referral_fen),
        villages=[
            {
                "village_id": v.village_id,
                "name": v.name,
                "net": money(v.net_fen),
                "paired": money(v.paired_fen),
            }
            for v in progress.villages
        ],
    )
    return body
