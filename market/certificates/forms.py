from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, DateField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional

from market.certificates.models import KIND_LABELS
from market.security.inputs import sane_day


def kind_choices():
    return [(kind.value, label) for kind, label in KIND_LABELS.items()]


class CertificateForm(FlaskForm):
    coop_id = SelectField(_l("合作社"), coerce=int)
    kind = SelectField(_l("证书类型"), choices=kind_choices, validators=[DataRequired()])
    number = StringField(_l("证书编号"), validators=[DataRequired(), Length(max=60)])
    issuer = StringField(_l("发证机关"), validators=[DataRequired(), Length(max=100)])
    valid_until = DateField(_l("有效期至"), validators=[DataRequired(), sane_day])
    covers_all_products = BooleanField(_l("覆盖本合作社全部商品（仅食品经营许可）"))
    product_ids = SelectMultipleField(_l("覆盖的商品"), coerce=int, validators=[Optional()])
    file = FileField(_l("证书扫描件（PDF、JPEG 或 PNG，不超过 10 MB）"))


class CertificateRejectForm(FlaskForm):
    reason = StringField(_l("驳回理由"), validators=[DataRequired(), Length(max=200)])
