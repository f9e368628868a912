"""market: the shop through which paired government units buy the villages' specialty products."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from market.config import build_config

    app.config.from_mapping(build_config(Path(app.instance_path), config))
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    Path(app.config["UPLOAD_DIR"]).mkdir(parents=True, exist_ok=True)

    _init_extensions(app)
    from market import assets, security

    security.init_app(app)
    assets.init_app(app)  # after ProxyFix: WhiteNoise answers static files before the app
    _register_blueprints(app)

    from market import api, cli, database, errorpages, pagecache, web
    from market.accounts import menu
    from market.campaign import ledger
    from market.groupbuy import presale as groupbuy_presale
    from market.presales import services as presales
    from market.settlements import ledger as settlement_ledger

    # The attribution ledger and the co-ops' settlement entries hear every amount received or
    # refunded, in the transaction that records it.
    ledger.install()
    settlement_ledger.install()
    presales.install()  # a presale's reservation is paid when its order's money arrives
    groupbuy_presale.install()  # a presale group-buy holds the harvest and hears of refunds
    web.init_app(app)
    pagecache.init_app(app)  # storefront pages from the cache
    menu.init_app(app)  # the signed-in header menu, stored per person and page
    errorpages.init_app(app)
    api.init_app(app)  # the JSON API at /api/v1: bearer tokens, no CSRF, errors of its own
    cli.init_app(app)
    database.mark_reading_requests(app)  # first of the before_request hooks
    if os.environ.get("MARKET_IN_PROCESS_JOBS") == "1" and not app.config.get("TESTING"):
        from market import jobs

        jobs.start(app, float(os.environ.get("MARKET_JOBS_INTERVAL", "30")))
    return app


def _init_extensions(app: Flask) -> None:
    from market import database
    from market.extensions import cache, csrf, db, login_manager, migrate
    from market.i18n import init_babel
    from market.models import render_migration_item

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(ROOT / "migrations"),
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        render_item=render_migration_item,
    )
    csrf.init_app(app)
    cache.init_app(app)
    login_manager.init_app(app)
    init_babel(app)


def _register_blueprints(app: Flask) -> None:
    from market.accounts.password_views import bp as passwords_bp
    from market.accounts.views import bp as accounts_bp
    from market.audit.views import bp as audit_bp
    from market.batches.views import bp as batches_bp
    from market.campaign.admin_views import bp as campaign_admin_bp
    from market.campaign.dashboard_views import bp as dashboards_bp
    from market.campaign.views import bp as campaign_bp
    from market.catalog.admin_views import bp as catalog_admin_bp
    from market.catalog.coop_views import bp as coop_bp
    from market.catalog.views import bp as catalog_bp
    from market.catalog.village_views import bp as villages_bp
    from market.certificates.views import bp as certificates_bp
    from market.directory.admin_views import bp as directory_admin_bp
    from market.exports.views import bp as exports_bp
    from market.groupbuy import coop_views, coordinator_views  # noqa: F401  (their routes)
    from market.groupbuy import views as groupbuy_views  # noqa: F401  (its routes)
    from market.groupbuy.blueprint import bp as groupbuy_bp
    from market.notifications.views import bp as notifications_bp
    from market.orders.views import bp as orders_bp
    from market.payments.views import bp as payments_bp
    from market.presales.views import bp as presales_bp
    from market.procurement import billing_views, custom_views  # noqa: F401  (their routes)
    from market.procurement import views as procurement_views  # noqa: F401  (its routes)
    from market.procurement.blueprint import bp as procurement_bp
    from market.settlements.views import bp as settlements_bp

    app.register_blueprint(catalog_bp)
    app.register_blueprint(villages_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(passwords_bp)
    app.register_blueprint(coop_bp)
    app.register_blueprint(directory_admin_bp)
    app.register_blueprint(catalog_admin_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(groupbuy_bp)
    app.register_blueprint(procurement_bp)
    app.register_blueprint(campaign_bp)
    app.register_blueprint(campaign_admin_bp)
    app.register_blueprint(dashboards_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(settlements_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(presales_bp)
    app.register_blueprint(batches_bp)
    app.register_blueprint(certificates_bp)
