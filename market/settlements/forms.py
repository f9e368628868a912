from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from market.forms import YuanField, positive_fen
from market.security.inputs import sane_day


class SendRefundForm(FlaskForm):
    """Finance records the outgoing transfer of an owed refund."""

    reference = StringField(_l("银行流水号"), validators=[DataRequired(), Length(max=100)])
    sent_date = DateField(_l("转出日期"), validators=[DataRequired(), sane_day])
    proof = FileField(_l("转账回单（可选，JPEG/PNG/WebP）"))


class CashHandoverForm(FlaskForm):
    """Finance counts the cash a coordinator hands over."""

    amount = YuanField(_l("交接金额（元）"), validators=[InputRequired(), positive_fen])
    reference = StringField(_l("交接凭证号"), validators=[DataRequired(), Length(max=100)])


class IssueStatementsForm(FlaskForm):
    until = DateField(_l("结算截止日"), validators=[DataRequired(), sane_day])


class PayoutForm(FlaskForm):
    reference = StringField(_l("银行流水号"), validators=[DataRequired(), Length(max=100)])
    paid_on = DateField(_l("付款日期"), validators=[DataRequired(), sane_day])
    proof = FileField(_l("付款回单（可选，JPEG/PNG/WebP）"))
    # Required for a disputed statement (the service says so): how the dispute was settled.
    note = StringField(_l("备注（有异议时必填）"), validators=[Optional(), Length(max=300)])


class DisputeForm(FlaskForm):
    reason = TextAreaField(_l("异议原因"), validators=[DataRequired(), Length(max=500)])
