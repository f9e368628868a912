"""Batch forms: recording a batch, receiving more into it, its inspection, and the per-line
batch pick of the ship form."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import DateField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from market.batches.models import INSPECTION_LABELS, InspectionResult
from market.forms import IntegerField

PICK_PREFIX = "batch-"


# Lazy labels: translated when the page is drawn.
INSPECTION_CHOICES = [(result.value, INSPECTION_LABELS[result]) for result in InspectionResult]


class BatchForm(FlaskForm):
    sku_id = SelectField(_l("规格"), coerce=int, validators=[InputRequired()])
    harvested_on = DateField(_l("采收/生产日期"), validators=[InputRequired()])
    plot = StringField(_l("地块/塘口"), validators=[Optional(), Length(max=80)])
    quantity = IntegerField(
        _l("数量"), validators=[InputRequired(), NumberRange(min=0, max=1_000_000)]
    )
    inspection_result = SelectField(
        _l("检测结果"),
        choices=INSPECTION_CHOICES,
        default=InspectionResult.NOT_TESTED.value,
        validators=[DataRequired()],
    )
    report = FileField(_l("检测报告（PDF、OFD 或图片）"))
    notes = TextAreaField(_l("备注"), validators=[Optional(), Length(max=2000)])


class ReceiveForm(FlaskForm):
    quantity = IntegerField(
        _l("入库数量"), validators=[InputRequired(), NumberRange(min=1, max=1_000_000)]
    )


class InspectionForm(FlaskForm):
    inspection_result = SelectField(
        _l("检测结果"), choices=INSPECTION_CHOICES, validators=[DataRequired()]
    )
    report = FileField(_l("检测报告（PDF、OFD 或图片）"))


def picks_from(data: Mapping[str, str]) -> dict[int, str]:
    """The ship form's per-line batch picks: field `batch-<line id>` -> a batch id, "none", or
    "" (the oldest open batch). Fields of other names, or a line id that is no number, are not
    picks."""
    picks: dict[int, str] = {}
    for key, value in data.items():
        if key.startswith(PICK_PREFIX) and key[len(PICK_PREFIX) :].isdigit():
            line_id = int(key[len(PICK_PREFIX) :])
            if line_id < 2**31:
                picks[line_id] = value.strip()
    return picks
