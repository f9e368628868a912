"""Group-buy forms: the coordinator's opening form (up to three items, up to three tiers each),
extending and lowering the minimum; the employee's quantities; the co-op's shipping form; the
reason given when declining or cancelling."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from flask_babel import get_timezone
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from market.forms import IntegerField, SkuRowForm, YuanField, positive_fen
from market.groupbuy.models import GroupBuyItem
from market.orders.carts import MAX_QUANTITY
from market.orders.forms import ShipForm as ShipForm  # the co-op's one parcel: carrier, number

ITEM_ROWS = 3
TIER_ROWS = 3
MAX_GROUP_QUANTITY = 1_000_000
# <input type="datetime-local"> sends "2025-06-01T18:30"; the first format is also how it is shown.
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


def shop_timezone() -> tzinfo:
    """The shop's zone (Asia/Shanghai) as a zoneinfo zone: a pytz zone attached with
    `replace(tzinfo=...)` would give its local mean time (+08:06)."""
    return ZoneInfo(str(get_timezone()))


def _representable(form, field) -> None:
    """A time the shop can compare and store: 0001-01-01 in Beijing is before year 1 in UTC
    (an OverflowError, not a form error, if left to the view)."""
    if field.data is None:
        return
    try:
        field.data.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError(_l("请填写有效的日期与时间")) from None


def local_time_field(label, *validators) -> DateTimeLocalField:
    """A datetime-local input read as the shop's local time; `.data` is aware. How far ahead a
    time may be is the services' rule (they say the latest allowed time)."""
    return DateTimeLocalField(
        label,
        format=LOCAL_FORMATS,
        tz=shop_timezone,
        validators=[*validators, _representable],
        render_kw={"step": 60},
    )


class TierForm(Form):
    min_total_quantity = IntegerField(
        _l("满（件）"), validators=[Optional(), NumberRange(1, MAX_GROUP_QUANTITY)]
    )
    price = YuanField(_l("单价（元）"), validators=[Optional(), positive_fen])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and (self.min_total_quantity.data is None) != (self.price.data is None):
            missing = self.price if self.price.data is None else self.min_total_quantity
            missing.errors = [*missing.errors, _l("阶梯的数量和单价要一起填写")]
            return False
        return ok


class ItemForm(SkuRowForm):
    """One row of the opening form; a row without a SKU is ignored."""

    sku_id = SelectField(_l("商品规格"), coerce=int, default=0)
    price = YuanField(
        _l("团购价（元）"),
        validators=[Optional(), positive_fen],
        render_kw={"inputmode": "decimal"},
    )
    cap = IntegerField(
        _l("上限（件，可不填）"), validators=[Optional(), NumberRange(1, MAX_GROUP_QUANTITY)]
    )
    tiers = FieldList(FormField(TierForm), min_entries=TIER_ROWS, max_entries=TIER_ROWS)
    REQUIRED = ("price", _l("请填写团购价"))


def payment_mode_choices(card_available: bool) -> list[tuple[str, object]]:
    choices: list[tuple[str, object]] = [("pickup", _l("取货时付款"))]
    if card_available:
        choices.append(("card", _l("参团时银行卡支付（截止后按达到的阶梯价结算）")))
    return choices


class GroupBuyForm(FlaskForm):
    title = StringField(
        _l("团购标题"),
        validators=[DataRequired(message=_l("请填写团购标题")), Length(max=100)],
    )
    description = TextAreaField(_l("说明（可不填）"), validators=[Optional(), Length(max=2000)])
    opens_at = local_time_field(_l("开始时间（不填为立即开始）"), Optional())
    closes_at = local_time_field(_l("截止时间"), InputRequired(message=_l("请填写截止时间")))
    min_quantity = IntegerField(
        _l("成团量（所有商品合计件数）"),
        validators=[
            InputRequired(message=_l("请填写成团量")),
            NumberRange(1, MAX_GROUP_QUANTITY, message=_l("成团量应在 1 到 %(max)d 件之间")),
        ],
    )
    payment_mode = RadioField(_l("付款方式"), default="pickup", validators=[DataRequired()])
    visibility = RadioField(
        _l("谁可以参加"),
        choices=[("members", _l("仅本单位职工")), ("link", _l("凡登录并持有链接者"))],
        default="members",
        validators=[DataRequired()],
    )
    pickup_address = StringField(
        _l("取货地点"),
        validators=[DataRequired(message=_l("请填写取货地点")), Length(max=200)],
    )
    pickup_contact = StringField(_l("取货联系人及电话"), validators=[Optional(), Length(max=100)])
    pickup_window = StringField(_l("取货时间"), validators=[Optional(), Length(max=100)])
    items = FieldList(FormField(ItemForm), min_entries=ITEM_ROWS, max_entries=ITEM_ROWS)

    def set_sku_choices(self, choices: list[tuple[int, str]]) -> None:
        for row in self.items:
            row.form.sku_id.choices = [(0, _l("— 不选 —")), *choices]

    def chosen_items(self) -> list[ItemForm]:
        return [row.form for row in self.items if row.form.chosen]

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not self.chosen_items():
            self.form_errors.append(_l("请至少选择一个商品规格"))
            ok = False
        return ok


class ExtendForm(FlaskForm):
    closes_at = local_time_field(
        _l("新的截止时间"), InputRequired(message=_l("请填写新的截止时间"))
    )


class ReasonForm(FlaskForm):
    """Declining a proposal, or cancelling a group-buy: the reason everyone is told."""

    reason = StringField(
        _l("理由"),
        validators=[DataRequired(message=_l("请填写理由")), Length(max=200)],
    )


class MinimumForm(FlaskForm):
    min_quantity = IntegerField(
        _l("新的成团量"),
        validators=[
            InputRequired(message=_l("请填写新的成团量")),
            NumberRange(1, MAX_GROUP_QUANTITY, message=_l("成团量应在 1 到 %(max)d 件之间")),
        ],
    )


class QuantitiesForm(FlaskForm):
    """How many of each item (joining or changing); fields are made per group-buy."""

    def quantities(self) -> dict[int, int]:
        return {
            int(name.removeprefix("item_")): field.data or 0
            for name, field in self._fields.items()
            if name.startswith("item_")
        }

    def quantity_fields(self):
        return [field for name, field in self._fields.items() if name.startswith("item_")]


def quantities_form(
    items: Iterable[GroupBuyItem], current: dict[int, int] | None = None
) -> QuantitiesForm:
    """A form with one quantity box per item, named `item_<id>`, prefilled with `current`."""
    items = list(items)

    class Quantities(QuantitiesForm):
        pass

    for item in items:
        default = (current or {}).get(item.id, 1 if len(items) == 1 and not current else 0)
        setattr(
            Quantities,
            f"item_{item.id}",
            IntegerField(
                f"{item.sku.product.name} {item.sku.spec}",
                default=default,
                validators=[
                    Optional(),
                    NumberRange(0, MAX_QUANTITY, message=_l("数量应在 0 到 %(max)d 之间")),
                ],
                render_kw={"min": 0, "max": MAX_QUANTITY, "inputmode": "numeric"},
            ),
        )
    return Quantities()
