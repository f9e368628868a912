"""Form pieces shared by several domains."""

from __future__ import annotations

import wtforms
from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import Length, Regexp, ValidationError

from market.money import InvalidAmount, fen_to_yuan_text, parse_yuan
from market.security.inputs import MAX_ID


class IntegerField(wtforms.IntegerField):
    """WTForms' IntegerField for numbers that fit an INTEGER column: anything beyond ±2**31−1
    (2**63, a thousand digits) is "not a valid number", never an OverflowError in NumberRange
    or in the database. Every form of the shop uses this one."""

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and abs(self.data) > MAX_ID:
            self.data = None
            raise ValueError(_l("数字太大"))


class YuanField(StringField):
    """A price typed in yuan ('12.5'); `.data` is integer fen (1250), or None when invalid.
    A subclass with other bounds or words overrides `parse` (raising ValueError to say why)."""

    def parse(self, text: str) -> int:
        try:
            return parse_yuan(text)
        except InvalidAmount:
            raise ValueError(_l("请输入正确的金额，例如 12.50")) from None

    def process_formdata(self, valuelist):
        self.raw = valuelist[0] if valuelist else ""
        if not self.raw.strip():
            self.data = None
            return
        try:
            self.data = self.parse(self.raw)
        except ValueError:
            self.data = None
            raise

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return fen_to_yuan_text(self.data) if isinstance(self.data, int) else ""


class SkuRowForm(wtforms.Form):
    """One row of a form's list of SKUs (a group-buy's items, a purchase's lines): a row whose
    `sku_id` is not chosen is ignored; a chosen row must fill the field named by `REQUIRED`
    ((field name, message))."""

    REQUIRED: tuple[str, object]

    @property
    def chosen(self) -> bool:
        return bool(self.sku_id.data)  # type: ignore[attr-defined]

    def validate(self, extra_validators=None) -> bool:
        if not self.chosen:
            return self.sku_id.validate(self)  # type: ignore[attr-defined]  # only the choice
        ok = super().validate(extra_validators)
        name, message = self.REQUIRED
        required = self[name]
        if required.data is None and not required.errors:
            required.errors = [*required.errors, message]
            ok = False
        return ok


# A mainland mobile number; \Z, not $: "$" also matches before a final newline, which would be
# stored.
PHONE_VALIDATORS = (
    Length(max=20),
    Regexp(r"^1\d{10}\Z", message=_l("手机号应为 11 位数字")),
)


def positive_fen(form, field):
    if field.data is not None and field.data <= 0:
        raise ValidationError(_l("金额必须大于 0"))
