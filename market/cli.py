"""flask commands: `flask --app market seed-demo`, `flask --app market directory import-roster`,
`flask --app market groupbuy close-due`."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

directory_cli = AppGroup("directory", help="The directory of units, villages and pairings.")
orders_cli = AppGroup("orders", help="Orders: deadlines.")
payments_cli = AppGroup("payments", help="Payments: reconciliation with the providers.")
campaign_cli = AppGroup("campaign", help="The campaign ledger: rollups and reconciliation.")
groupbuy_cli = AppGroup("groupbuy", help="Group-buys: closing at the deadline.")
settlements_cli = AppGroup("settlements", help="Co-op settlement statements.")
money_cli = AppGroup("money", help="Where every fen is: the one reconciliation.")
GROUPS = (directory_cli, orders_cli, payments_cli, campaign_cli, groupbuy_cli)
GROUPS += (settlements_cli, money_cli)


@click.command("seed-demo")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def seed_demo_command(data_dir: Path | None) -> None:
    """Load the demo directory, catalog and accounts once; later runs change nothing."""
    from market.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, default_data_dir, seed_demo

    source = data_dir or default_data_dir()
    if seed_demo(source):
        click.echo(f"Demo data loaded from {source}. Accounts (password {DEMO_PASSWORD}):")
        for email, description in DEMO_ACCOUNTS:
            click.echo(f"  {email:28} {description}")
    else:
        click.echo("Demo data already present; nothing changed.")


@directory_cli.command("import-roster")
@click.argument("csv_file", type=click.File("rb"))
def import_roster_command(csv_file) -> None:
    """Import a pairing roster CSV (unit,town,village,since,until,note): all lines or none."""
    from market.directory.services import import_roster
    from market.errors import RowErrors

    try:
        result = import_roster(csv_file.read())
    except RowErrors as error:
        click.echo(str(error), err=True)
        for line, message in error.errors:
            click.echo(f"  line {line}: {message}", err=True)
        raise SystemExit(1) from None
    click.echo(
        f"pairings created {result.pairings_created}, updated {result.pairings_updated}, "
        f"unchanged {result.pairings_unchanged}; units created {len(result.units_created)}, "
        f"villages created {len(result.villages_created)}"
    )


@orders_cli.command("expire")
def expire_orders_command() -> None:
    """Close unpaid orders past their deadline and give their stock back (for cron)."""
    from market.payments.background import expire_unpaid_orders

    click.echo(f"expired {expire_unpaid_orders()} unpaid orders")


@payments_cli.command("reconcile")
@click.option("--older-than-minutes", default=2, show_default=True, type=int)
@click.option(
    "--against-provider",
    is_flag=True,
    help="Compare every card payment's captured and refunded amounts with Stripe's; record "
    "refunds made in the Stripe dashboard; exit 1 on a difference it cannot explain.",
)
def payments_reconcile_command(older_than_minutes: int, against_provider: bool) -> None:
    """Settle open card payments whose webhooks never came, from the provider's own state."""
    from datetime import timedelta

    if against_provider:
        _reconcile_against_provider()
        return
    from market.payments.background import reconcile

    result = reconcile(timedelta(minutes=older_than_minutes))
    for number, before, after in result.changed:
        click.echo(f"order {number}: {before} -> {after}")
    click.echo(
        f"{len(result.changed)} payments changed; {result.skipped_recent} open payments skipped "
        f"as too recent (under {older_than_minutes} min)"
    )


def _reconcile_against_provider() -> None:
    from flask import current_app

    from market.errors import DomainError
    from market.money import format_fen
    from market.payments.reconciliation import reconcile_against_provider

    if not current_app.config.get("STRIPE_SECRET_KEY"):
        click.echo("card payments need STRIPE_SECRET_KEY", err=True)
        raise SystemExit(1)
    try:
        result = reconcile_against_provider()
    except DomainError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None
    for d in result.differences:
        click.echo(
            f"order {d.order_number} payment #{d.payment_id}: {d.what}: shop"
            f" {format_fen(d.shop_fen)}, Stripe {format_fen(d.provider_fen)}"
            f" {'(recorded)' if d.explained else 'UNEXPLAINED'}"
        )
    click.echo(
        f"{len(result.differences)} differences, {result.refunds_recorded} refunds recorded "
        f"from the provider ({result.checked} card payments checked)"
    )
    if result.unexplained:
        raise SystemExit(1)


@groupbuy_cli.command("close-due")
def close_due_group_buys_command() -> None:
    """Close every group-buy past its deadline: charge the tier price or release (for cron)."""
    from market.groupbuy.closing import close_due

    report = close_due()
    for group_buy_id, why in report.resumed:
        click.echo(f"resumed group-buy {group_buy_id}: {why}")
    click.echo(f"closed {len(report.closed)} group-buys")


@campaign_cli.command("rebuild-rollups")
def rebuild_rollups_command() -> None:
    """Rebuild the dashboard rollups from the ledger and say whether they were equal."""
    from market.campaign.services import rebuild_rollups

    equal, rows = rebuild_rollups()
    click.echo(
        f"rollups rebuilt: {rows} rows; equal to the ledger before: {'yes' if equal else 'NO'}"
    )
    if not equal:
        raise SystemExit(1)


@campaign_cli.command("reconcile")
def campaign_reconcile_command() -> None:
    """The ledger against payments received minus refunds, per order and overall."""
    from market.campaign.services import reconcile
    from market.money import format_fen

    ledger, money, differences = reconcile()
    click.echo(f"ledger {format_fen(ledger)}; payments minus refunds {format_fen(money)}")
    for difference in differences:
        click.echo(
            f"  order {difference.order_id}: ledger {format_fen(difference.ledger_fen)}, "
            f"money {format_fen(difference.money_fen)}"
        )
    click.echo(f"{len(differences)} differences")
    if differences or ledger != money:
        raise SystemExit(1)


@settlements_cli.command("issue")
@click.option(
    "--until",
    "until",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="the last day of the period (Beijing time), YYYY-MM-DD",
)
def settlements_issue_command(until) -> None:
    """Issue every co-op's statement for the period ending on --until (idempotent)."""
    from market.money import format_fen
    from market.settlements.services import issue_statements

    issued = issue_statements(until.date())
    for statement in issued:
        click.echo(
            f"  {statement.number} {statement.coop.name}: payable"
            f" {format_fen(statement.payable_fen)}"
            f" (carried {format_fen(statement.closing_balance_fen)})"
        )
    click.echo(f"issued {len(issued)} statements")


@money_cli.command("reconcile")
def money_reconcile_command() -> None:
    """Payments − refunds = ledger = paid out + owed to co-ops + cash held, to the fen."""
    from market.campaign.reconciliation import money_reconcile
    from market.money import format_fen

    result = money_reconcile()
    t = result.totals
    click.echo(
        f"received {format_fen(t.received_fen)}; refunds sent {format_fen(t.refunds_sent_fen)},"
        f" owed {format_fen(t.refunds_owed_fen)}; ledger {format_fen(result.ledger_fen)}"
    )
    click.echo(
        f"paid out {format_fen(t.paid_out_fen)}; fee {format_fen(t.fee_fen)}; owed to co-ops"
        f" {format_fen(t.owed_to_coops_fen)} (due {format_fen(t.due_fen)}, not yet due"
        f" {format_fen(t.not_due_fen)}); cash not yet handed over {format_fen(t.cash_held_fen)}"
    )
    for difference in result.differences:
        click.echo(f"  {difference}")
    click.echo(f"{len(result.differences)} differences")
    if result.differences:
        raise SystemExit(1)


def _readable_errors(command: click.Command) -> click.Command:
    """An operator's mistake (a domain error: a missing key, a bad date) ends the command with
    one readable line and exit status 1, never a traceback, and changes nothing."""
    callback = command.callback

    @functools.wraps(callback)
    def run(*args, **kwargs):
        from market.errors import DomainError
        from market.extensions import db

        try:
            return callback(*args, **kwargs)
        except DomainError as error:
            db.session.rollback()
            click.echo(f"error: {error}", err=True)
            raise SystemExit(1) from None

    run.readable_errors = True  # type: ignore[attr-defined]
    command.callback = run
    return command


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(directory_cli)
    app.cli.add_command(orders_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(campaign_cli)
    app.cli.add_command(groupbuy_cli)
    app.cli.add_command(settlements_cli)
    app.cli.add_command(money_cli)
    for command in [seed_demo_command] + [c for group in GROUPS for c in group.commands.values()]:
        if command.callback is not None and not getattr(command.callback, "readable_errors", 0):
            _readable_errors(command)
