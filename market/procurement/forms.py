"""以买代帮 and 产品定制 forms: the coordinator's purchase (up to eight lines, empty rows ignored)
and yearly target, the approver's rejection, the custom-product request, and a co-op's quote."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    FormField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from market.forms import IntegerField, SkuRowForm, YuanField, positive_fen
from market.orders.carts import MAX_QUANTITY
from market.procurement.models import PURPOSE_LABELS
from market.security.inputs import sane_day

LINE_ROWS = 8
MAX_CUSTOM_QUANTITY = 1_000_000


class LineForm(SkuRowForm):
    """One row of a purchase; a row without a product is ignored."""

    sku_id = SelectField(_l("商品规格"), coerce=int, default=0)
    quantity = IntegerField(
        _l("数量"),
        validators=[
            Optional(),
            NumberRange(1, MAX_QUANTITY, message=_l("数量应在 1 到 %(max)d 之间")),
        ],
        render_kw={"min": 1, "max": MAX_QUANTITY, "inputmode": "numeric"},
    )
    REQUIRED = ("quantity", _l("请填写数量"))


class PurchaseForm(FlaskForm):
    purpose = SelectField(
        _l("用途"),
        choices=[(purpose.value, label) for purpose, label in PURPOSE_LABELS.items()],
        default="canteen",
        validators=[DataRequired()],
    )
    purpose_note = StringField(_l("用途说明（可不填）"), validators=[Optional(), Length(max=200)])
    recipient = StringField(_l("收货人"), validators=[DataRequired(), Length(max=60)])
    phone = StringField(_l("联系电话"), validators=[DataRequired(), Length(max=20)])
    address = StringField(_l("收货地址"), validators=[DataRequired(), Length(max=300)])
    invoice_title = StringField(_l("发票抬头"), validators=[DataRequired(), Length(max=100)])
    invoice_tax_id = StringField(
        _l("税号（统一社会信用代码）"),
        validators=[
            DataRequired(),
            Length(max=30),
            Regexp(r"^\s*[0-9A-Za-z]{15,20}\s*\Z", message=_l("税号应为 15 到 20 位字母或数字")),
        ],
    )
    pay_online = BooleanField(_l("在线支付（不选则对公转账）"))
    lines = FieldList(FormField(LineForm), min_entries=LINE_ROWS, max_entries=LINE_ROWS)

    def set_sku_choices(self, choices: list[tuple[int, str]]) -> None:
        for row in self.lines:
            row.form.sku_id.choices = [(0, _l("— 不选 —")), *choices]

    def chosen_lines(self) -> dict[int, int]:
        """SKU id -> quantity; the same product chosen in two rows adds up."""
        wanted: dict[int, int] = {}
        for row in self.lines:
            if row.form.chosen:
                sku_id = row.form.sku_id.data
                wanted[sku_id] = wanted.get(sku_id, 0) + (row.form.quantity.data or 0)
        return wanted

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if not any(row.form.chosen for row in self.lines):
            self.form_errors.append(_l("请至少选择一个商品"))
            ok = False
        return ok


class TargetForm(FlaskForm):
    amount = YuanField(_l("年度采购目标（元）"), validators=[InputRequired(), positive_fen])


class RejectForm(FlaskForm):
    reason = StringField(_l("驳回原因"), validators=[DataRequired(), Length(max=300)])


class CustomRequestForm(FlaskForm):
    title = StringField(_l("定制什么"), validators=[DataRequired(), Length(max=100)])
    description = TextAreaField(_l("详细说明"), validators=[Optional(), Length(max=4000)])
    quantity = IntegerField(
        _l("数量（件）"),
        validators=[InputRequired(), NumberRange(1, MAX_CUSTOM_QUANTITY)],
        render_kw={"min": 1, "inputmode": "numeric"},
    )
    budget = YuanField(
        _l("每件预算（元）"),
        validators=[InputRequired(), positive_fen],
        render_kw={"inputmode": "decimal"},
    )
    needed_by = DateField(_l("需要日期"), validators=[InputRequired(), sane_day])
    logo = FileField(_l("单位标志（可选，JPEG/PNG/WebP）"))
    card_text = StringField(_l("贺卡文字（可不填）"), validators=[Optional(), Length(max=300)])
    packaging = StringField(_l("包装要求（可不填）"), validators=[Optional(), Length(max=200)])
    # Where the goods go: printed on the co-op's 送货单.
    recipient = StringField(_l("收货人"), validators=[DataRequired(), Length(max=60)])
    phone = StringField(_l("联系电话"), validators=[DataRequired(), Length(max=20)])
    address = StringField(_l("收货地址"), validators=[DataRequired(), Length(max=300)])


class QuoteForm(FlaskForm):
    coop_id = SelectField(_l("报价合作社"), coerce=int, validators=[InputRequired()])
    unit_price = YuanField(
        _l("单价（元）"),
        validators=[InputRequired(), positive_fen],
        render_kw={"inputmode": "decimal"},
    )
    lead_time_days = IntegerField(
        _l("交货天数"),
        validators=[InputRequired(), NumberRange(1, 365, message=_l("交货天数应在 1 到 365 之间"))],
        render_kw={"min": 1, "max": 365, "inputmode": "numeric"},
    )
    sample = FileField(_l("样品照片（可选）"))
    note = TextAreaField(_l("说明（可不填）"), validators=[Optional(), Length(max=500)])


class InvoiceRequestForm(FlaskForm):
    """The unit's invoice request for one of its orders (发票抬头, 税号, where it goes)."""

    title = StringField(_l("发票抬头"), validators=[DataRequired(), Length(max=100)])
    tax_id = StringField(
        _l("税号（统一社会信用代码）"),
        validators=[
            DataRequired(),
            Length(max=30),
            Regexp(r"^\s*[0-9A-Za-z]{15,20}\s*\Z", message=_l("税号应为 15 到 20 位字母或数字")),
        ],
    )
    address = StringField(_l("寄送地址或接收邮箱"), validators=[DataRequired(), Length(max=300)])


class InvoiceIssueForm(FlaskForm):
    """The co-op or finance: the invoice's number and/or its e-invoice file."""

    number = StringField(_l("发票号码"), validators=[Optional(), Length(max=40)])
    file = FileField(_l("电子发票（PDF、OFD 或图片）"))
