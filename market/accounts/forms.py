from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from market.accounts.models import CoopRole, UnitRole
from market.forms import PHONE_VALIDATORS


class LoginForm(FlaskForm):
    # Named `email` for the shop's clients and tests; a mobile number is accepted as well.
    email = StringField(_l("邮箱或手机号"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("密码"), validators=[DataRequired(), Length(max=200)])
    remember = BooleanField(_l("记住我"))
    next = HiddenField(validators=[Length(max=2000)])


class RegisterForm(FlaskForm):
    name = StringField(_l("姓名"), validators=[DataRequired(), Length(max=60)])
    email = StringField(_l("邮箱"), validators=[Optional(), Email(), Length(max=254)])
    phone = StringField(_l("手机号"), validators=[Optional(), *PHONE_VALIDATORS])
    password = PasswordField(
        _l("密码"),
        validators=[DataRequired(), Length(min=10, max=200, message=_l("密码应为 10 到 200 位"))],
        description=_l("至少 10 位；几个不相关的词加数字最好记也最难猜"),
    )
    confirm = PasswordField(
        _l("确认密码"),
        validators=[DataRequired(), EqualTo("password", message=_l("两次输入的密码不一致"))],
    )

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and not (self.email.data or self.phone.data):
            self.email.errors.append(_l("请填写邮箱或手机号"))
            return False
        return ok


class JoinUnitForm(FlaskForm):
    invite_code = StringField(_l("单位邀请码"), validators=[DataRequired(), Length(max=16)])


class ActionForm(FlaskForm):
    """A bare POST (confirm, reject, remove): only the CSRF token."""


def unit_role_choices():
    return [
        (UnitRole.MEMBER.value, _l("职工")),
        (UnitRole.COORDINATOR.value, _l("联络员")),
        (UnitRole.APPROVER.value, _l("审批人")),
    ]


def coop_role_choices():
    return [
        (CoopRole.MANAGER.value, _l("负责人")),
        (CoopRole.STAFF.value, _l("工作人员")),
        ("", _l("移除")),
    ]


class AppointUnitForm(FlaskForm):
    unit_id = SelectField(_l("单位"), coerce=int, validators=[DataRequired()])
    role = SelectField(_l("角色"), choices=unit_role_choices, validators=[DataRequired()])


class AppointCoopForm(FlaskForm):
    coop_id = SelectField(_l("合作社"), coerce=int, validators=[DataRequired()])
    role = SelectField(_l("角色"), choices=coop_role_choices, validators=[Optional()])


class FlagsForm(FlaskForm):
    is_organizer = BooleanField(_l("活动组织方"))
    is_admin = BooleanField(_l("管理员"))
    is_finance = BooleanField(_l("财务"))


def _new_password_fields():
    return (
        PasswordField(
            _l("新密码"),
            validators=[
                DataRequired(),
                Length(min=10, max=200, message=_l("密码应为 10 到 200 位")),
            ],
            description=_l("至少 10 位；几个不相关的词加数字最好记也最难猜"),
        ),
        PasswordField(
            _l("确认新密码"),
            validators=[DataRequired(), EqualTo("password", message=_l("两次输入的密码不一致"))],
        ),
    )


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("当前密码"), validators=[DataRequired(), Length(max=200)])
    password, confirm = _new_password_fields()


class ForgotPasswordForm(FlaskForm):
    account = StringField(_l("邮箱或手机号"), validators=[DataRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    password, confirm = _new_password_fields()


class ResetWithCodeForm(FlaskForm):
    account = StringField(_l("手机号或邮箱"), validators=[DataRequired(), Length(max=254)])
    code = StringField(
        _l("重置码"),
        validators=[DataRequired(), Length(max=20)],
        description=_l("活动组织方核实身份后告诉您的 8 位数字"),
    )
    password, confirm = _new_password_fields()
