"""WeChat mini-program sign-in (code2session). The real exchange needs WeChat's servers
(api.weixin.qq.com/sns/jscode2session with the app id and secret); here it is an interface,
with a stand-in that never calls out, used by the tests and by any shop without WeChat settings.
A code maps to a WeChat openid; the openid signs in the person it is bound to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flask import current_app


@dataclass(frozen=True)
class WechatSession:
    openid: str
    unionid: str | None = None


class Code2Session(Protocol):
    def exchange(self, code: str) -> WechatSession | None:
        """The session of a login code from wx.login(), or None when WeChat refuses it."""


class NoWechat:
    """The shop has no WeChat settings: every code is refused."""

    def exchange(self, code: str) -> WechatSession | None:
        return None


class FakeCode2Session:
    """A stand-in that knows the codes it was given; never calls out."""

    def __init__(self, codes: dict[str, str] | None = None):
        self.codes = dict(codes or {})

    def exchange(self, code: str) -> WechatSession | None:
        openid = self.codes.get(code)
        return WechatSession(openid) if openid else None


def client() -> Code2Session:
    """The configured exchange: app.config["WECHAT_CODE2SESSION"] (an object with `exchange`),
    else NoWechat. A real client is plugged in here by whoever has the WeChat credentials."""
    return current_app.config.get("WECHAT_CODE2SESSION") or NoWechat()


def user_id_for_openid(openid: str) -> int | None:
    """The person bound to an openid: app.config["WECHAT_OPENIDS"] maps openids to user ids
    until binding is stored (binding needs the real mini-program to be meaningful)."""
    return (current_app.config.get("WECHAT_OPENIDS") or {}).get(openid)
