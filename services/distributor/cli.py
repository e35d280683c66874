"""``dagmonitor report``: the distributor's reports on demand, and the outbox's failed mails.

Importing this module connects to nothing; each command loads the settings when it runs.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import click

_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.group()
def report() -> None:
    """Send a report now (idempotent: nobody receives the same report twice)."""


def _run(kind: str, day: datetime | None) -> None:
    from dagmonitor.clock import local_date, utc_now
    from services.distributor.config import DistributorSettings
    from services.distributor.ondemand import report_on_demand

    # The distributor's verb: its principal on the local stack (the completeness check reads
    # the upstream offsets it may describe).
    settings = DistributorSettings.load().default_principal("dagmonitor-distributor")
    when: date = day.date() if day else local_date(utc_now(), settings.tz) - timedelta(days=1)
    run = asyncio.run(report_on_demand(settings, kind, when))
    states = ", ".join(f"{state} {count}" for state, count in sorted(run.states.items()))
    click.echo(
        f"{kind} {run.outcome.period}: {run.outcome.recipients} entitled recipient(s), "
        f"{run.outcome.stored} new mail(s); {states or 'no mails'}; "
        f"{run.published} provision(s) published"
    )
    if run.blocked:
        click.echo(
            "not sent: the covenant is not in force (`dagmonitor covenant status`)", err=True
        )
    if not run.complete:
        click.echo("some mails are not sent; they stay in the outbox", err=True)
        sys.exit(1)


@report.command("daily")
@click.option("--date", "day", type=_DATE, help="The day reported on (default: yesterday).")
def daily(day: datetime | None) -> None:
    """The daily Dagmonitor of one day, to every entitled recipient."""
    _run("daily", day)


@report.command("hotspots")
@click.option("--date", "day", type=_DATE, help="The last of the 14 days (default: yesterday).")
def hotspots(day: datetime | None) -> None:
    """The cumulative Dagmonitor (hotspots) of the 14 days ending with the date."""
    _run("hotspots", day)


@click.command("evaluation")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the report (HTML, text, CSV, chart) to this folder instead of sending it.",
)
def evaluation(out_dir: Path | None) -> None:
    """The covenant's evaluation report of the current term (ADR 0018): written to a folder,
    or (without --out) mailed to the entitled roles and registered, as the scheduler does at
    the start of the term's last month. Idempotent: nobody receives it twice per term."""
    from services.distributor.config import DistributorSettings
    from services.distributor.ondemand import evaluation_files

    if out_dir is not None:
        settings = DistributorSettings.load()
        for path in asyncio.run(evaluation_files(settings, out_dir)):
            click.echo(str(path))
        return
    _run("evaluation", None)


@report.command("retry")
def retry() -> None:
    """Make the mails that used up their SMTP attempts due again now."""
    from services.distributor.config import DistributorSettings
    from services.distributor.ondemand import retry_failed

    settings = DistributorSettings.load().default_principal("dagmonitor-distributor")
    count = asyncio.run(retry_failed(settings))
    click.echo(f"{count} failed mail(s) queued again")
