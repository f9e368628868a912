"""Configuration from environment variables; nothing secret lives in the code."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path


def _instance_secret(instance_path: Path) -> str:
    """SECRET_KEY from the environment, or one generated once into instance/secret_key."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _normalise_database_url(url: str) -> str:
    # psycopg 3 is the driver; accept the common postgres:// spellings too.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def build_config(instance_path: Path, overrides: dict | None = None) -> dict:
    env = os.environ
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'market.db'}"
    config: dict = {
        "SECRET_KEY": None,
        "SQLALCHEMY_DATABASE_URI": _normalise_database_url(database_url),
        # No ping on every checkout: a pooled connection idle this long is pinged before use
        # (market/database.py).
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        "DATABASE_PING_AFTER_IDLE_SECONDS": float(
            env.get("DATABASE_PING_AFTER_IDLE_SECONDS", "10")
        ),
        "UPLOAD_DIR": str(instance_path / "uploads"),
        # Several photos of up to 5 MB each fit in one request; each file is checked on its own.
        "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
        "MAX_IMAGE_BYTES": 5 * 1024 * 1024,
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "LANGUAGES": ["zh_CN", "en"],
        "WTF_CSRF_TIME_LIMIT": None,
        # Behind a reverse proxy: how many proxies in front of the shop set X-Forwarded-For,
        # -Proto and -Host (werkzeug's ProxyFix trusts that many hops, no more). 0: none.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        # Cookies: never readable by scripts, not sent on cross-site requests, HTTPS-only when
        # SESSION_COOKIE_SECURE=1 (production). The session cookie ends with the browser.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("SESSION_COOKIE_SECURE", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": env.get("SESSION_COOKIE_SECURE", "0") == "1",
        # Signed-in sessions end after this long without a request (记住我: REMEMBER_DAYS).
        "SESSION_IDLE_MINUTES": int(env.get("SESSION_IDLE_MINUTES", "120")),
        "REMEMBER_DAYS": int(env.get("REMEMBER_DAYS", "30")),
        # Rate limits ("N/period;M/period", every window counts). Sign-in: per (account,
        # address), growing windows, and per address; nobody is locked out from elsewhere.
        "RATELIMIT_ENABLED": env.get("RATELIMIT_ENABLED", "1") == "1",
        "LIMIT_SIGN_IN_ACCOUNT": env.get(
            "LIMIT_SIGN_IN_ACCOUNT", "5/minute;10/15 minutes;20/hour;50/day"
        ),
        "LIMIT_SIGN_IN_ADDRESS": env.get("LIMIT_SIGN_IN_ADDRESS", "60/minute;600/hour"),
        "LIMIT_REGISTER": env.get("LIMIT_REGISTER", "10/hour;50/day"),
        "LIMIT_PASSWORD_RESET_ADDRESS": env.get("LIMIT_PASSWORD_RESET_ADDRESS", "10/hour"),
        "LIMIT_PASSWORD_RESET_ACCOUNT": env.get("LIMIT_PASSWORD_RESET_ACCOUNT", "3/hour;6/day"),
        "LIMIT_PASSWORD_CHECK": env.get("LIMIT_PASSWORD_CHECK", "5/minute;20/hour"),
        "LIMIT_REFERRAL": env.get("LIMIT_REFERRAL", "30/minute"),
        "LIMIT_SEARCH": env.get("LIMIT_SEARCH", "60/minute;1000/hour"),
        "LIMIT_WEBHOOK": env.get("LIMIT_WEBHOOK", "600/minute"),
        # Password reset links and organizer-issued codes are good for this long, once.
        "PASSWORD_RESET_MINUTES": int(env.get("PASSWORD_RESET_MINUTES", "30")),
        "PRODUCTS_PER_PAGE": 24,
        # Orders: unpaid orders give their stock back after this long; a bank transfer gets days.
        "UNPAID_ORDER_MINUTES": int(env.get("UNPAID_ORDER_MINUTES", "30")),
        "BANK_TRANSFER_DAYS": int(env.get("BANK_TRANSFER_DAYS", "7")),
        # 预售定金: a served reservation's 尾款 is due this many days after the harvest.
        "PRESALE_BALANCE_DAYS": int(env.get("PRESALE_BALANCE_DAYS", "7")),
        # Settlements: a shipped parcel's money is due to its co-op this many days after shipping
        # when the buyer has not confirmed receipt; the platform fee in basis points of the net
        # (0: like the national 832 platform, the service centre keeps nothing).
        "SETTLE_AFTER_DAYS": int(env.get("SETTLE_AFTER_DAYS", "7")),
        # 先货后款: a unit's order shipped before payment is to be paid this many days after
        # shipping; e-invoices (PDF/OFD/picture) a co-op or finance uploads are at most this big.
        "PAYMENT_TERM_DAYS": int(env.get("PAYMENT_TERM_DAYS", "30")),
        "MAX_INVOICE_BYTES": int(env.get("MAX_INVOICE_BYTES", str(10 * 1024 * 1024))),
        "PLATFORM_FEE_BP": int(env.get("PLATFORM_FEE_BP", "0")),
        # Where buyers send a bank transfer (对公转账); shown on the payment page.
        "BANK_ACCOUNT_NAME": env.get("BANK_ACCOUNT_NAME", "高州市消费帮扶服务中心（示例）"),
        "BANK_NAME": env.get("BANK_NAME", "中国农业银行高州支行（示例）"),
        "BANK_ACCOUNT_NUMBER": env.get("BANK_ACCOUNT_NUMBER", "6228 0000 0000 0000 000"),
        # Stripe: without a secret key the shop offers bank transfer only.
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", "https://api.stripe.com"),
        "STRIPE_JS_URL": env.get("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        # Notification e-mail: without a MAIL_SERVER notifications stay in the app only.
        "MAIL_SERVER": env.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(env.get("MAIL_PORT", "25")),
        "MAIL_USE_TLS": env.get("MAIL_USE_TLS", "0").lower() in ("1", "true", "yes"),
        "MAIL_USERNAME": env.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "noreply@market.example"),
        # Redis: Celery's broker and result backend in production (market/tasks.py). Empty is the
        # embedded default: Celery tasks then run eagerly, in the calling process.
        "REDIS_URL": env.get("REDIS_URL", ""),
    }
    # The page cache (market/pagecache/): CACHE_TYPE from the environment, else Redis when
    # REDIS_URL is set (shared by every web process) or SimpleCache (this process's memory: the
    # embedded one-process shop). CACHE_REDIS_URL defaults to REDIS_URL.
    for name in ("CACHE_TYPE", "CACHE_REDIS_URL"):
        if env.get(name):
            config[name] = env[name]
    config["CACHE_KEY_PREFIX"] = "market:"
    config["CACHE_DEFAULT_TIMEOUT"] = int(env.get("CACHE_DEFAULT_TIMEOUT", "3600"))
    config["CACHE_THRESHOLD"] = 2000  # SimpleCache's entry limit
    if env.get("CELERY_TASK_ALWAYS_EAGER"):
        config["CELERY_TASK_ALWAYS_EAGER"] = env["CELERY_TASK_ALWAYS_EAGER"] == "1"
    if overrides:
        config.update(overrides)
    # Bank slips and payout proofs (market/uploads.py): beside UPLOAD_DIR, never inside it (that
    # is served to anyone at /media); only views that check who may see them serve them.
    config.setdefault(
        "PRIVATE_UPLOAD_DIR",
        env.get("PRIVATE_UPLOAD_DIR") or str(Path(config["UPLOAD_DIR"]).parent / "private"),
    )
    private, public = Path(config["PRIVATE_UPLOAD_DIR"]), Path(config["UPLOAD_DIR"])
    if private.resolve().is_relative_to(public.resolve()):
        raise ValueError("PRIVATE_UPLOAD_DIR must not lie inside UPLOAD_DIR (public at /media)")
    # Decided after the overrides, so that a test which sets REDIS_URL gets a real broker too.
    config.setdefault("CELERY_TASK_ALWAYS_EAGER", not config["REDIS_URL"])
    config.setdefault("CACHE_TYPE", "RedisCache" if config["REDIS_URL"] else "SimpleCache")
    config.setdefault("CACHE_REDIS_URL", config["REDIS_URL"])
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite serialises writers: wait for the lock rather than fail under light concurrency.
        config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 15}}
    config.setdefault("REMEMBER_COOKIE_DURATION", timedelta(days=config["REMEMBER_DAYS"]))
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret(instance_path)
    return config
