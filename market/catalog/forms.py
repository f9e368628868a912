from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from market.catalog.services import MAX_STOCK
from market.forms import IntegerField, YuanField, positive_fen


def month_choices():
    return [(m, _l("%(month)d月", month=m)) for m in range(1, 13)]


class ProductForm(FlaskForm):
    coop_id = SelectField(_l("合作社"), coerce=int)
    name = StringField(_l("商品名称"), validators=[DataRequired(), Length(max=80)])
    category_id = SelectField(_l("分类"), coerce=int, validators=[DataRequired()])
    description = TextAreaField(_l("商品介绍"), validators=[Optional(), Length(max=4000)])
    origin_story = TextAreaField(_l("产地故事"), validators=[Optional(), Length(max=4000)])
    season_months = SelectMultipleField(
        _l("当季月份（不选为全年）"), coerce=int, choices=month_choices, validators=[Optional()]
    )
    shelf_life_days = IntegerField(
        _l("保质期（天）"), validators=[Optional(), NumberRange(min=1, max=3650)]
    )
    images = MultipleFileField(_l("商品图片（JPEG/PNG/WebP，每张不超过 5 MB）"))


class NewProductForm(ProductForm):
    # The first SKU comes with the product, so a new listing is never without a price.
    spec = StringField(_l("规格"), validators=[DataRequired(), Length(max=60)])
    price = YuanField(_l("价格（元）"), validators=[InputRequired(), positive_fen])
    stock = IntegerField(
        _l("库存"), validators=[InputRequired(), NumberRange(min=0, max=MAX_STOCK)]
    )
    weight_g = IntegerField(
        _l("重量（克）"), validators=[Optional(), NumberRange(min=1, max=10**6)]
    )


class SkuForm(FlaskForm):
    spec = StringField(_l("规格"), validators=[DataRequired(), Length(max=60)])
    price = YuanField(_l("价格（元）"), validators=[InputRequired(), positive_fen])
    stock = IntegerField(
        _l("初始库存"), default=0, validators=[Optional(), NumberRange(min=0, max=MAX_STOCK)]
    )
    weight_g = IntegerField(
        _l("重量（克）"), validators=[Optional(), NumberRange(min=1, max=10**6)]
    )
    active = BooleanField(_l("在售"), default=True)


class StockForm(FlaskForm):
    delta = IntegerField(
        _l("增减数量（负数为减少）"),
        validators=[InputRequired(), NumberRange(min=-MAX_STOCK, max=MAX_STOCK)],
    )


class StatusForm(FlaskForm):
    status = SelectField(
        choices=[("listed", _l("上架")), ("delisted", _l("下架"))], validators=[DataRequired()]
    )


class CategoryForm(FlaskForm):
    name = StringField(_l("分类名称"), validators=[DataRequired(), Length(max=30)])
    name_en = StringField(_l("英文名称（英文界面显示）"), validators=[Optional(), Length(max=40)])
    slug = StringField(
        _l("网址代码（小写字母、数字、-）"),
        validators=[DataRequired(), Length(max=30), Regexp(r"^[a-z0-9-]+$")],
    )
    sort_order = IntegerField(_l("排序"), default=0, validators=[Optional(), NumberRange(0, 999)])


class SynonymForm(FlaskForm):
    terms = StringField(
        _l("同义词（用空格分隔，如：红薯 番薯 地瓜）"),
        validators=[DataRequired(), Length(max=200)],
    )


BUNDLE_ROWS = 4


class BundlePartForm(Form):
    """One co-op's share of a gift box; a row without a co-op is ignored."""

    coop_id = SelectField(_l("合作社"), coerce=int, default=0)
    share = IntegerField(
        _l("分成比例"),
        validators=[Optional(), NumberRange(1, 10_000, message=_l("分成比例应在 1 到 10000 之间"))],
    )


class BundleForm(FlaskForm):
    """礼盒分成: which co-ops' goods the box holds and how its price is shared (weights, e.g.
    percentages). All rows empty makes it an ordinary product again."""

    parts = FieldList(FormField(BundlePartForm), min_entries=BUNDLE_ROWS, max_entries=BUNDLE_ROWS)

    def set_coop_choices(self, choices: list[tuple[int, str]]) -> None:
        for row in self.parts:
            row.form.coop_id.choices = [(0, _l("— 不选 —")), *choices]

    def chosen_parts(self) -> list[tuple[int, int]]:
        return [
            (row.form.coop_id.data, row.form.share.data or 0)
            for row in self.parts
            if row.form.coop_id.data
        ]

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for row in self.parts:
            if row.form.coop_id.data and row.form.share.data is None:
                row.form.share.errors = [*row.form.share.errors, _l("请填写分成比例")]
                ok = False
        return ok
