from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from market.campaign.targets import parse_target_yuan
from market.forms import IntegerField, YuanField
from market.security.inputs import sane_day


class TargetAmountField(YuanField):
    """A target typed in yuan ('50000' or '50,000.50'); `.data` is fen, None when left empty."""

    def parse(self, text: str) -> int:
        return parse_target_yuan(text)  # the targets' bound and words


class CampaignForm(FlaskForm):
    name = StringField(_l("活动名称"), validators=[DataRequired(), Length(max=100)])
    year = IntegerField(_l("年度"), validators=[InputRequired(), NumberRange(2000, 2100)])
    starts_on = DateField(_l("开始日期"), validators=[DataRequired(), sane_day])
    ends_on = DateField(_l("结束日期"), validators=[DataRequired(), sane_day])
    paired_only = BooleanField(_l("只有购买结对村的产品才计入目标"))
    laggard_threshold_pct = IntegerField(
        _l("提醒线（完成按日折算目标的百分比，低于即列入提醒约谈名单）"),
        default=60,
        validators=[InputRequired(), NumberRange(0, 100)],
    )


class TargetForm(FlaskForm):
    unit_id = SelectField(_l("单位"), coerce=int, validators=[DataRequired()])
    amount = TargetAmountField(_l("目标（元，留空则取消目标）"), validators=[Optional()])


class DefaultTargetForm(FlaskForm):
    amount = TargetAmountField(_l("默认目标（元）"), validators=[InputRequired()])
    replace_existing = BooleanField(_l("覆盖已设定的目标"))


class TargetImportForm(FlaskForm):
    sheet = FileField(
        _l("目标表（XLSX 或 CSV：单位名称, 目标（元））"),
        validators=[
            FileRequired(_l("请选择文件")),
            FileAllowed(["xlsx", "csv"], _l("只支持 XLSX 或 CSV 文件")),
        ],
    )


class DashboardFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET filter form

    start = DateField(_l("开始日期"), validators=[Optional(), sane_day])
    end = DateField(_l("结束日期"), validators=[Optional(), sane_day])
    mode = SelectField(_l("方式"), validators=[Optional()])
    town = SelectField(_l("镇（街道）"), coerce=int, validators=[Optional()])


class LaggardForm(FlaskForm):
    class Meta:
        csrf = False

    on = DateField(_l("截至日期"), validators=[Optional(), sane_day])
