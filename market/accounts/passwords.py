"""Password rules: long enough and hard to guess (zxcvbn), with the reason in the shop's
language; and a check that costs the same time whether or not the account exists."""

from __future__ import annotations

from functools import cache

from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from market.errors import DomainError

MIN_LENGTH = 10
MAX_LENGTH = 200
# zxcvbn's score: 0 (guessed at once) … 4 (very unlikely); 3 is "safely unguessable" online.
MIN_SCORE = 3


class WeakPassword(DomainError):
    def __init__(self, message: str):
        super().__init__(message, field="password")


def _reason(result: dict) -> str:
    """What made zxcvbn score the password low, in words a buyer understands."""
    patterns = {match.get("pattern") for match in result.get("sequence", [])}
    names = {match.get("dictionary_name") for match in result.get("sequence", [])}
    if "user_inputs" in names:
        return _("密码不能包含您的姓名、邮箱或手机号")
    if "passwords" in names:
        return _("这是常见密码，很容易被猜到")
    if "dictionary" in patterns:
        return _("密码由常见单词或名字组成，很容易被猜到")
    if "spatial" in patterns:
        return _("密码是键盘上相邻的按键（如 qwerty、asdf），很容易被猜到")
    if "sequence" in patterns:
        return _("密码是连续的字符（如 abcdef、123456），很容易被猜到")
    if "repeat" in patterns:
        return _("密码有太多重复的字符，很容易被猜到")
    if "date" in patterns or "regex" in patterns:
        return _("密码是日期或年份，很容易被猜到")
    return _("密码太容易被猜到")


def check_strength(password: str, personal: list[str] | None = None) -> None:
    """Refuse a password shorter than MIN_LENGTH or that zxcvbn scores below MIN_SCORE
    (`personal`: the person's name, e-mail, phone, which must not make up the password)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(_("密码应为 %(min)d 到 %(max)d 位", min=MIN_LENGTH, max=MAX_LENGTH))
    if len(password) > MAX_LENGTH:
        raise WeakPassword(_("密码应为 %(min)d 到 %(max)d 位", min=MIN_LENGTH, max=MAX_LENGTH))
    inputs = [part for value in personal or [] for part in _parts(value)]
    result = zxcvbn(password, user_inputs=inputs)
    if result["score"] < MIN_SCORE:
        raise WeakPassword(
            _(
                "密码强度不够：%(reason)s。请用更长的、不常见的组合，例如几个不相关的词加数字",
                reason=_reason(result),
            )
        )


def _parts(value: str) -> list[str]:
    """ "zhang.san@gov.cn" -> the whole and its pieces, so that any of them counts as personal."""
    value = (value or "").strip().lower()
    if not value:
        return []
    local = value.split("@", 1)[0]
    return [value, local, *[p for p in local.replace("_", ".").split(".") if len(p) > 2]]


@cache
def _dummy_hash() -> str:
    # Hashed once per process, with the same method and cost as real passwords.
    return generate_password_hash("not-a-password-of-anyone")


def verify(user, password: str) -> bool:
    """The password check, against a dummy hash when there is no such account: an unknown
    account takes as long as a known one, so timing tells nobody which accounts exist."""
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)
