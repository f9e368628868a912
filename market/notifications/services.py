"""Notifications: written in the producer's transaction, mailed only once that transaction commits.

Other domains (group-buys first) call `notify(...)` from inside their own unit of work; it only
flushes. The e-mails it prepares wait in the session until the commit succeeds, and are dropped
when the transaction (or the savepoint they were written in) rolls back: nobody is told about a
group-buy closing that did not close. In the request a mail outage is logged and never raised, so
it can never undo or break the work that produced the notification; on a Celery worker the
`market.send_mail` task retries instead.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app, g, has_request_context
from flask_babel import LazyString, force_locale
from flask_babel import gettext as _
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, SessionTransaction

from market.accounts.models import User
from market.errors import NotFound
from market.extensions import db
from market.models import utcnow
from market.notifications.models import Notification
from market.security.redirects import is_safe

logger = logging.getLogger(__name__)

PER_PAGE = 20
SMTP_TIMEOUT_SECONDS = 10
TITLE_LENGTH = Notification.__table__.c.title.type.length
LINK_LENGTH = Notification.__table__.c.link.type.length
_OUTBOX_KEY = "notifications.outbox"


def is_local_path(link: str) -> bool:
    """A path on this site ("/group-buys/3"), never another host ("//evil.example")."""
    return is_safe(link)


# -- writing -----------------------------------------------------------------------------------
Text = str | LazyString


def notify(user_ids: Iterable[int], kind: str, title: Text, body: Text, link: str) -> None:
    """Tell each user once (duplicates in `user_ids` are ignored). Adds the rows and flushes; the
    caller's transaction commits them. When a mail server is configured, the users with an e-mail
    address are mailed as well, after that commit. `link` must be a local path.

    Give `title` and `body` as `_l("...", name=value)`: the message is kept as its msgid and
    values, and each reader sees it in their own language (the mail in the recipient's). Plain
    text (a reason someone typed) is shown as it is."""
    recipients = list(dict.fromkeys(user_ids))
    if not recipients:
        return
    if link and (not is_local_path(link) or len(link) > LINK_LENGTH):
        raise ValueError(f"a notification links to a local path, not {link!r}")
    default_locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(default_locale):
        stored_title, stored_body = str(title)[:TITLE_LENGTH], str(body)
        params = {
            part: message
            for part, message in (("title", _message(title)), ("body", _message(body)))
            if message is not None
        }
    db.session.add_all(
        Notification(
            user_id=user_id,
            kind=kind,
            title=stored_title,
            body=stored_body,
            link=link,
            params=params or None,
        )
        for user_id in recipients
    )
    db.session.flush()
    _unread_changed()
    mail = _MailSettings.from_config(current_app.config)
    if mail is None:
        return
    addresses = db.session.execute(
        select(User.name, User.email, User.locale).where(
            User.id.in_(recipients), User.email.is_not(None), User.email != "", User.active
        )
    ).all()
    languages = current_app.config.get("LANGUAGES") or [default_locale]
    letters = []
    for name, email, locale in addresses:
        with force_locale(locale if locale in languages else default_locale):
            subject, text = str(title)[:TITLE_LENGTH], str(body)
        text = f"{text}\n\n{mail.absolute(link)}" if link else text
        letters.append(_Letter(name, email, subject, text))
    _queue(db.session(), mail, letters)


def _message(text: Text) -> list | None:
    """[msgid, values] of a lazily translated message; None for plain text."""
    if not isinstance(text, LazyString) or len(text._args) != 1:
        return None
    values = {
        name: value if isinstance(value, int | float | str) else str(value)
        for name, value in text._kwargs.items()
    }
    return [text._args[0], values]


def mail_after_commit(name: str, email: str, subject: str, text: str) -> None:
    """One e-mail, not kept in the app (e.g. a password-reset link), sent once the caller's
    transaction commits; nothing when no mail server is configured."""
    mail = _MailSettings.from_config(current_app.config)
    if mail is None or not email:
        return
    _queue(db.session(), mail, [_Letter(name, email, subject, text)])


# -- reading and marking -----------------------------------------------------------------------
def unread_count(user_id: int) -> int:
    """One COUNT over the (user_id, read_at) index."""
    return db.session.scalar(_unread_of(user_id))


def _unread_of(user_id):
    return (
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )


def unread_count_of(user_id_column):
    """The unread COUNT as a subquery for the session's query, which reads it for the header
    (market/accounts/sessions.py LOADED_WITH_SESSION)."""
    return _unread_of(user_id_column).scalar_subquery()


# What the header shows in this request (in `g`), and whether the request changed it.
UNREAD_SHOWN = "unread_notification_count"
UNREAD_CHANGED = "unread_notifications_changed"


def _unread_changed() -> None:
    """This request changed someone's unread notifications: the header counts them again rather
    than show what the session's query read before the change."""
    if has_request_context():
        g.pop(UNREAD_SHOWN, None)
        g.setdefault(UNREAD_CHANGED, True)


def recent(user_id: int, page: int, per_page: int = PER_PAGE):
    """A user's notifications, newest first, a page at a time."""
    query = (
        select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )
    return db.paginate(query, page=page, per_page=per_page, error_out=False)


def mark_read(user: User, notification_id: int) -> Notification:
    """A user marks one of their own notifications read (again: no change). Someone else's is
    answered as missing, so ids reveal nothing."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotFound(_("通知不存在"))
    if notification.read_at is None:
        notification.read_at = utcnow()
        _unread_changed()
    db.session.commit()
    return notification


def mark_all_read(user: User) -> int:
    """Every unread notification of the user becomes read; returns how many changed."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _unread_changed()
    db.session.commit()
    return result.rowcount


# -- e-mail ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _MailSettings:
    server: str
    port: int
    use_tls: bool
    username: str
    password: str = field(repr=False)
    sender: str
    site: str  # "https://shop.example" when the site's address is configured, else ""

    @classmethod
    def from_config(cls, config) -> _MailSettings | None:
        if not config.get("MAIL_SERVER"):
            return None
        site = ""
        if config.get("SERVER_NAME"):
            scheme = config.get("PREFERRED_URL_SCHEME") or "http"
            root = (config.get("APPLICATION_ROOT") or "/").rstrip("/")
            site = f"{scheme}://{config['SERVER_NAME']}{root}"
        return cls(
            server=config["MAIL_SERVER"],
            port=int(config.get("MAIL_PORT") or 25),
            use_tls=bool(config.get("MAIL_USE_TLS")),
            username=config.get("MAIL_USERNAME") or "",
            password=config.get("MAIL_PASSWORD") or "",
            sender=config.get("MAIL_FROM") or "noreply@market.example",
            site=site,
        )

    def absolute(self, link: str) -> str:
        return f"{self.site}{link}"


@dataclass(frozen=True)
class _Letter:
    name: str
    email: str
    subject: str
    text: str

    def message(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = Address(self.name, addr_spec=self.email)
        message["Subject"] = self.subject
        message["Date"] = formatdate()
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        message.set_content(self.text)  # UTF-8; headers are RFC 2047-encoded when sent
        return message


@dataclass
class _Outbox:
    mail: _MailSettings
    # Each letter with the transaction (or savepoint) it was written in.
    pending: list[tuple[SessionTransaction, _Letter]] = field(default_factory=list)
    committed: bool = False


def _queue(session: Session, mail: _MailSettings, letters: list[_Letter]) -> None:
    if not letters:
        return
    transaction = session.get_nested_transaction() or session.get_transaction()
    outbox = session.info.setdefault(_OUTBOX_KEY, _Outbox(mail))
    outbox.pending.extend((transaction, letter) for letter in letters)


# Registered once, for every session: a session without an outbox costs a dict lookup.
@event.listens_for(Session, "after_commit")
def _mark_committed(session: Session) -> None:
    outbox = session.info.get(_OUTBOX_KEY)
    # A released savepoint proves nothing: the outer transaction may still roll back.
    if outbox is not None and not session.in_nested_transaction():
        outbox.committed = True


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    outbox = session.info.get(_OUTBOX_KEY)
    if outbox is not None:
        outbox.pending = [
            (transaction, letter)
            for transaction, letter in outbox.pending
            if not _within(transaction, previous_transaction)
        ]


@event.listens_for(Session, "after_transaction_end")
def _send_when_done(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction has ended and its connection is back in the pool, so a slow mail
    # server holds no database connection. Nothing lingers into the session's next transaction.
    if transaction.parent is not None:
        return
    outbox = session.info.pop(_OUTBOX_KEY, None)
    if outbox is not None and outbox.committed and outbox.pending:
        deliver(outbox.mail, [letter for _transaction, letter in outbox.pending])


def deliver(mail: _MailSettings, letters: list[_Letter]) -> None:
    """Send now in the embedded shop; with Celery on Redis, hand the letters to a worker (which
    reads the mail server's settings from its own configuration: no password in the queue)."""
    if current_app.config.get("CELERY_TASK_ALWAYS_EAGER", True):
        send(mail, letters)
        return
    from market.tasks import SEND_MAIL, celery_for

    try:
        celery_for(current_app._get_current_object()).send_task(
            SEND_MAIL, args=[[asdict(x) for x in letters]]
        )
    except Exception:  # no broker: send from here rather than lose the letters
        logger.exception("could not queue %d e-mail(s); sending them directly", len(letters))
        send(mail, letters)


def send_queued(letters: list[dict]) -> int:
    """The worker's side of `deliver`. A mail server that cannot be reached or refuses the
    login raises (an OSError: smtplib's errors are ones), so the `market.send_mail` task tries
    again later; a refused address is logged and skipped."""
    mail = _MailSettings.from_config(current_app.config)
    if mail is None:
        logger.warning("no MAIL_SERVER on the worker: %d e-mail(s) dropped", len(letters))
        return 0
    send_or_raise(mail, [_Letter(**letter) for letter in letters])
    return len(letters)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def send(mail: _MailSettings, letters: list[_Letter]) -> None:
    """Send the batch over one connection, in the request. Failures are logged, never raised:
    the notifications are already committed and stay in the app."""
    try:
        send_or_raise(mail, letters)
    except Exception:  # any failure (network, TLS, auth, encoding) is logged, never raised
        logger.exception(
            "could not send %d notification e-mail(s) through %s:%s",
            len(letters),
            mail.server,
            mail.port,
        )


def send_or_raise(mail: _MailSettings, letters: list[_Letter]) -> None:
    """Send the batch over one connection; a connection, TLS or login failure raises."""
    with smtplib.SMTP(mail.server, mail.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if mail.use_tls:
            smtp.starttls(context=ssl.create_default_context())
        if mail.username:
            smtp.login(mail.username, mail.password)
        for letter in letters:
            try:
                smtp.send_message(letter.message(mail.sender))
            except (
                smtplib.SMTPRecipientsRefused,
                smtplib.SMTPDataError,
                smtplib.SMTPNotSupportedError,  # a non-ASCII address, no SMTPUTF8
                ValueError,
            ):
                # One refused (or unwritable) address must not cost the others their message.
                logger.exception("notification e-mail to %s not sent", letter.email)
