"""Two organizers deciding one certificate at the same moment: one decision is kept, the other is
told the certificate is decided already (no 500), and the audit log holds one event. PostgreSQL
only: a row lock under real concurrency, which SQLite (one writer at a time) cannot show."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from market.accounts.models import User
from market.audit.models import AuditEvent
from market.certificates import services
from market.certificates.models import Certificate, CertificateStatus
from market.errors import InvalidTransition
from market.extensions import db
from tests import factories
from tests.certificates.conftest import last_certificate_id, upload
from tests.concurrency import all_at_once

pytestmark = pytest.mark.postgres_only


def test_a_verify_and_a_reject_at_once_keep_one_decision(app, world, manager):
    assert upload(manager, world).status_code == 303
    certificate_id = last_certificate_id(app)
    with app.app_context():
        second = factories.make_user("钱组织", "organizer2@example.com", is_organizer=True)
        db.session.commit()
        organizers = [world.organizer, second.id]
    calls = [
        lambda: (
            services.verify_certificate(db.session.get(User, organizers[0]), certificate_id).status
        ),
        lambda: (
            services.reject_certificate(
                db.session.get(User, organizers[1]), certificate_id, "扫描件不清晰"
            ).status
        ),
    ]
    results = all_at_once(app, calls)
    decided = [r for r in results if isinstance(r, CertificateStatus)]
    refused = [r for r in results if isinstance(r, InvalidTransition)]
    assert len(decided) == 1 and len(refused) == 1, results
    with app.app_context():
        assert db.session.get(Certificate, certificate_id).status == decided[0]
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("certificate.%"))
        ).all()
        assert len(events) == 1 and events[0].after["status"] == decided[0].value
