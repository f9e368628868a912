"""Sign-in by token: POST /tokens (email or phone + password), /tokens/refresh (rotates),
/tokens/revoke (signs out everywhere), /tokens/wechat (code2session), GET /me."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, fields, validate

from market.accounts import services as accounts
from market.api import tokens, wechat
from market.api.blueprint import blueprint
from market.api.errors import error_response
from market.api.schemas import ErrorSchema, MessageSchema, local_time
from market.extensions import db
from market.security.access import Access, requires
from market.security.throttle import client_address, limit

blp = blueprint("api_auth", "Sign-in by token, and who I am")


class SignInSchema(Schema):
    login = fields.String(
        required=True,
        validate=validate.Length(1, 254),
        metadata={"description": "email or mobile number", "example": "employee@example.com"},
    )
    password = fields.String(required=True, validate=validate.Length(1, 200))


class RefreshSchema(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(1, 200))


class WechatSignInSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": "the code from wx.login()"},
    )


class TokensSchema(Schema):
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    access_token = fields.String(required=True)
    access_expires_at = fields.DateTime(required=True)
    refresh_token = fields.String(required=True)
    refresh_expires_at = fields.DateTime(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})


class MembershipSchema(Schema):
    unit_id = fields.Integer(required=True)
    unit_name = fields.String(required=True)
    role = fields.String(required=True)
    status = fields.String(required=True)


class MeSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(allow_none=True, required=True)
    phone = fields.String(allow_none=True, required=True)
    unit = fields.Nested(MembershipSchema, allow_none=True, required=True)
    coop_ids = fields.List(fields.Integer(), required=True)
    roles = fields.List(fields.String(), required=True)


def _tokens_body(issued: tokens.IssuedTokens) -> dict:
    from market.models import utcnow

    return {
        "token_type": "Bearer",
        "access_token": issued.access_token,
        "access_expires_at": local_time(issued.access_expires_at),
        "refresh_token": issued.refresh_token,
        "refresh_expires_at": local_time(issued.refresh_expires_at),
        "expires_in": int((issued.access_expires_at - utcnow()).total_seconds()),
    }


@blp.route("/tokens", methods=["POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_SIGN_IN_ADDRESS", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(SignInSchema)
@blp.response(201, TokensSchema)
@blp.alt_response(400, schema=ErrorSchema)
@blp.alt_response(429, schema=ErrorSchema)
def create_tokens(data):
    """Sign in with email or phone and password; rate-limited like the site's sign-in."""
    user = accounts.authenticate(data["login"], data["password"], client_address())
    return _tokens_body(tokens.issue(user))


@blp.route("/tokens/refresh", methods=["POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_SIGN_IN_ADDRESS", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(RefreshSchema)
@blp.response(201, TokensSchema)
@blp.alt_response(401, schema=ErrorSchema)
def refresh_tokens(data):
    """A new pair for a refresh token; the old pair stops working (each refresh token works
    once; reusing one revokes every token of the person)."""
    return _tokens_body(tokens.refresh(data["refresh_token"]))


@blp.route("/tokens/wechat", methods=["POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_SIGN_IN_ADDRESS", methods=["POST"])
@blp.doc(security=[])
@blp.arguments(WechatSignInSchema)
@blp.response(201, TokensSchema)
@blp.alt_response(401, schema=ErrorSchema)
def wechat_tokens(data):
    """Sign in from the WeChat mini-program with a wx.login() code (code2session)."""
    session = wechat.client().exchange(data["code"])
    user_id = wechat.user_id_for_openid(session.openid) if session else None
    user = db.session.get(accounts.User, user_id) if user_id else None
    if user is None or not user.is_active:
        return error_response(401, _("微信账号尚未绑定商城账号"), code="wechat_not_bound")
    return _tokens_body(tokens.issue(user, method="wechat"))


@blp.route("/tokens/revoke", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, MessageSchema)
@blp.alt_response(401, schema=ErrorSchema)
def revoke_tokens():
    """退出: every token and site session of the person ends, on every device."""
    tokens.sign_out(current_user)
    return {"message": _("已退出登录")}


def _roles(user) -> list[str]:
    from market.security.access import allows

    return [
        access.value for access in Access if access is not Access.PUBLIC and allows(user, access)
    ]


@blp.route("/me", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, MeSchema)
@blp.alt_response(401, schema=ErrorSchema)
def me():
    """Who the token belongs to, their unit and what they may do."""
    membership = current_user.open_unit_membership()
    return {
        "id": current_user.id,
        "name": current_user.name,
        "email": current_user.email,
        "phone": current_user.phone,
        "unit": {
            "unit_id": membership.unit_id,
            "unit_name": membership.unit.name,
            "role": membership.role.value,
            "status": membership.status.value,
        }
        if membership
        else None,
        "coop_ids": [coop.id for coop in current_user.managed_coops()],
        "roles": _roles(current_user),
    }
