from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from market.security.inputs import sane_day


class TownForm(FlaskForm):
    name = StringField(_l("镇（街道）名称"), validators=[DataRequired(), Length(max=60)])


class VillageForm(FlaskForm):
    town_id = SelectField(_l("所属镇（街道）"), coerce=int, validators=[DataRequired()])
    name = StringField(_l("村名"), validators=[DataRequired(), Length(max=60)])
    is_typical = BooleanField(_l("典型村"))
    story = TextAreaField(_l("村庄故事"), validators=[Optional(), Length(max=8000)])
    photo = FileField(_l("村庄照片（JPEG/PNG/WebP，不超过 5 MB）"))


class CoopForm(FlaskForm):
    village_id = SelectField(_l("所在村"), coerce=int, validators=[DataRequired()])
    name = StringField(_l("合作社名称"), validators=[DataRequired(), Length(max=100)])
    intro = TextAreaField(_l("简介"), validators=[Optional(), Length(max=4000)])
    contact_phone = StringField(_l("联系电话"), validators=[Optional(), Length(max=30)])
    settlement_account = StringField(_l("结算账户"), validators=[Optional(), Length(max=200)])
    approved = BooleanField(_l("已审核，可上架商品"))


class UnitForm(FlaskForm):
    name = StringField(_l("单位名称"), validators=[DataRequired(), Length(max=100)])
    address = StringField(_l("地址"), validators=[Optional(), Length(max=200)])
    contact_phone = StringField(_l("联系电话"), validators=[Optional(), Length(max=30)])


class PairingForm(FlaskForm):
    unit_id = SelectField(_l("单位"), coerce=int, validators=[DataRequired()])
    village_id = SelectField(_l("村"), coerce=int, validators=[DataRequired()])
    since = DateField(_l("开始日期"), validators=[DataRequired(), sane_day])
    until = DateField(_l("结束日期（可空）"), validators=[Optional(), sane_day])
    note = StringField(_l("备注"), validators=[Optional(), Length(max=300)])


class RosterForm(FlaskForm):
    roster = FileField(_l("结对名单 CSV"), validators=[FileRequired(_l("请选择 CSV 文件"))])
