from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from market.forms import PHONE_VALIDATORS, IntegerField
from market.orders.carts import MAX_QUANTITY


class AddToCartForm(FlaskForm):
    sku_id = IntegerField(validators=[InputRequired()])
    quantity = IntegerField(
        _l("数量"), default=1, validators=[InputRequired(), NumberRange(1, MAX_QUANTITY)]
    )


class CartQuantityForm(FlaskForm):
    quantity = IntegerField(_l("数量"), validators=[InputRequired(), NumberRange(0, MAX_QUANTITY)])


class CheckoutForm(FlaskForm):
    idempotency_key = HiddenField(validators=[DataRequired(), Length(max=64)])
    # sku id:unit price (fen) of each line the page showed; parsed by carts.parse_prices,
    # where anything malformed or missing means "not shown" and asks for confirmation.
    shown_prices = HiddenField()
    delivery_method = RadioField(
        _l("收货方式"),
        choices=[("delivery", _l("快递到家")), ("pickup", _l("到单位自提"))],
        default="delivery",
        validators=[DataRequired()],
    )
    address_id = SelectField(_l("收货地址"), coerce=int, validators=[Optional()])
    recipient = StringField(_l("收货人"), validators=[Optional(), Length(max=60)])
    phone = StringField(_l("手机号"), validators=[Optional(), *PHONE_VALIDATORS])
    region = StringField(_l("省市区"), validators=[Optional(), Length(max=100)])
    detail = StringField(_l("详细地址"), validators=[Optional(), Length(max=200)])
    note = StringField(_l("备注"), validators=[Optional(), Length(max=300)])

    def delivery_fields(self) -> dict:
        """The delivery asked for, as `orders.services.delivery_for` takes it (the checkout and
        every page that orders through this form, e.g. a presale's)."""
        return {
            "method": self.delivery_method.data,
            "address_id": self.address_id.data,
            "recipient": self.recipient.data,
            "phone": self.phone.data,
            "region": self.region.data,
            "detail": self.detail.data,
            "note": self.note.data,
        }


class ShipForm(FlaskForm):
    carrier = StringField(_l("快递公司"), validators=[DataRequired(), Length(max=40)])
    tracking_number = StringField(_l("运单号"), validators=[Optional(), Length(max=60)])


class OrderFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form

    status = SelectField(_l("状态"), validators=[Optional()])
    mode = SelectField(_l("方式"), validators=[Optional()])
    village = SelectField(_l("村"), coerce=int, validators=[Optional()])
    coop = SelectField(_l("合作社"), coerce=int, validators=[Optional()])
    start = StringField(_l("开始日期"), validators=[Optional(), Length(max=10)])
    end = StringField(_l("结束日期"), validators=[Optional(), Length(max=10)])
    invoice = SelectField(
        _l("发票"),
        choices=[("", _l("全部发票")), ("outstanding", _l("发票未开"))],
        validators=[Optional()],
    )
