"""Presale forms: the co-op's opening form and harvest announcement; the buyer's 预订 form
(quantity, the choice should the harvest fall short, and the delivery fields of the checkout)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from market.forms import IntegerField, YuanField, positive_fen
from market.orders.carts import MAX_QUANTITY
from market.orders.forms import CheckoutForm
from market.presales.models import MAX_LIMIT, PaymentKind
from market.security.inputs import sane_day

REFUND = "refund"
ROLLOVER = "rollover"


class PresaleForm(FlaskForm):
    # The service checks the SKU is the co-op's own (another co-op's is a 404, not a form error).
    sku_id = SelectField(
        _l("商品规格"), coerce=int, validate_choice=False, validators=[InputRequired()]
    )
    harvest_from = DateField(_l("预计采收开始"), validators=[DataRequired(), sane_day])
    harvest_to = DateField(_l("预计采收结束"), validators=[DataRequired(), sane_day])
    price = YuanField(_l("预售价（元/份）"), validators=[InputRequired(), positive_fen])
    limit_quantity = IntegerField(
        _l("限量（份）"), validators=[InputRequired(), NumberRange(1, MAX_LIMIT)]
    )
    payment_kind = RadioField(
        _l("付款方式"),
        choices=[
            (PaymentKind.FULL.value, _l("全款预订：下单即付全款")),
            (PaymentKind.DEPOSIT.value, _l("定金预订：下单付定金，采收后付尾款")),
        ],
        default=PaymentKind.FULL.value,
        validators=[DataRequired()],
    )
    # Checked against the price by the service (0 < 定金 < 预售价), for a deposit presale only.
    deposit = YuanField(_l("定金（元/份）"), validators=[Optional(), positive_fen])
    note = StringField(_l("说明"), validators=[Optional(), Length(max=300)])


class HarvestForm(FlaskForm):
    quantity = IntegerField(
        _l("实际采收（份）"), validators=[InputRequired(), NumberRange(0, MAX_LIMIT)]
    )


class ReserveForm(CheckoutForm):
    quantity = IntegerField(
        _l("数量"), default=1, validators=[InputRequired(), NumberRange(1, MAX_QUANTITY)]
    )
    shortfall = RadioField(
        _l("如果歉收、未能供货"),
        choices=[(REFUND, _l("全额退款")), (ROLLOVER, _l("顺延到下一季"))],
        default=REFUND,
        validators=[DataRequired()],
    )
    for_unit = BooleanField(_l("为本单位预订（对公转账）"))
