from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, InputRequired, Length

from market.forms import YuanField, positive_fen
from market.security.inputs import sane_day


class TransferForm(FlaskForm):
    reference = StringField(_l("银行流水号"), validators=[DataRequired(), Length(max=100)])
    transfer_date = DateField(_l("到账日期"), validators=[DataRequired(), sane_day])
    proof = FileField(_l("转账回单（可选，JPEG/PNG/WebP）"))


class RefundForm(FlaskForm):
    amount = YuanField(_l("退款金额（元）"), validators=[InputRequired(), positive_fen])
    reason = StringField(_l("退款原因"), validators=[DataRequired(), Length(max=300)])
