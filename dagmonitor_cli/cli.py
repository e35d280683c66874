"""The ``dagmonitor`` command (ARCHITECTURE.md, section 10).

Each verb is a thin shell around a module that does the work, so the same code is used by the
tests. Errors of this project (``DagmonitorError``) end the command with a one-line message and
exit status 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime

import click
from pydantic import ValidationError

from dagmonitor.errors import DagmonitorError
from dagmonitor.settings import DagmonitorSettings, describe_invalid


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dagmonitor")
def cli() -> None:
    """Share police incident data with the municipality exactly as the covenant allows."""


@cli.command()
@click.option(
    "--no-services", is_flag=True, help="Only the servers (Kafka, PostgreSQL, SMTP sink)."
)
def up(no_services: bool) -> None:
    """Start the local stack and the five services, or reuse configured servers."""
    from dagmonitor_cli.platform.stack import LocalStack

    stack = LocalStack()
    click.echo(f"local stack in {stack.root}")
    stack.up(echo=click.echo, with_services=not no_services)
    click.echo(f"endpoints written to {stack.env_file}")


@cli.command()
@click.option("--count", type=click.IntRange(min=1), default=400, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), help="Default: the day before yesterday."
)
@click.option("--exit", "exit_after", is_flag=True, help="Stop the stack after the summary.")
def demo(count: int, seed: int, day: datetime | None, exit_after: bool) -> None:
    """Run one day of the covenant end to end on the local stack and say what happened."""
    from dagmonitor.telemetry import configure_logging
    from dagmonitor_cli.demo import default_day, print_summary, run_demo
    from dagmonitor_cli.platform.stack import LocalStack

    configure_logging("demo", "WARNING")
    stack = LocalStack()
    stack.up(echo=click.echo, with_services=True)
    try:
        summary = asyncio.run(
            run_demo(day.date() if day else default_day(), count, seed, click.echo)
        )
        print_summary(summary, click.echo)
        if not exit_after:
            click.echo("the stack keeps running; Ctrl-C stops it")
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        stack.down(echo=click.echo)


@cli.command()
def down() -> None:
    """Stop what `dagmonitor up` started."""
    from dagmonitor_cli.platform.stack import LocalStack

    LocalStack().down(echo=click.echo)


@cli.command()
def status() -> None:
    """Say what runs where; exit status 1 when something `up` started is not answering."""
    from dagmonitor_cli.platform.stack import LocalStack

    rows = LocalStack().status()
    if not rows:
        click.echo("nothing is running (run `dagmonitor up`)")
        sys.exit(1)
    for name, address, running in rows:
        click.echo(f"{name:<9} {address:<60} {'up' if running else 'DOWN'}")
    if not all(running for _, _, running in rows):
        sys.exit(1)


@cli.group()
def topics() -> None:
    """Manage the topics of the topic table."""


@topics.command("apply")
def topics_apply() -> None:
    """Create or update every topic of the topic table on the broker (idempotent)."""
    from dagmonitor.topic_admin import apply_topics
    from deploy.k8s.access import ADMIN

    settings = DagmonitorSettings.load().default_principal(ADMIN)
    changes = asyncio.run(apply_topics(settings))
    for change in changes:
        detail = f" ({'; '.join(change.details)})" if change.details else ""
        click.echo(f"{change.action.value:<9} {change.topic}{detail}")


@topics.command("list")
def topics_list() -> None:
    """Print the topic table."""
    from dagmonitor.topics import TOPICS

    settings = DagmonitorSettings.load()
    for spec in TOPICS:
        click.echo(
            f"{spec.physical_name(settings.topic_prefix):<28} {spec.partitions:>2}p "
            f"{spec.cleanup.value:<15} {spec.retention_days:>3}d  {spec.schema}"
        )


@cli.command()
@click.argument("topic")
@click.option(
    "--group",
    default="cli",
    show_default=True,
    help="Your name in the subscriber's group prefix: the committed position is kept per group.",
)
@click.option("--max", "limit", type=int, default=None, help="Stop after this many records.")
@click.option(
    "--idle",
    type=float,
    default=None,
    help="Stop when nothing new arrived for this many seconds (default: follow for ever).",
)
def subscribe(topic: str, group: str, limit: int | None, idle: float | None) -> None:
    """Print an approved topic as JSON lines, as a downstream subscriber reads it.

    Connects as the subscriber principal, continues from the group's committed position (a new
    group starts at the beginning) and commits what it printed. Progress goes to stderr.
    """
    from dagmonitor_cli.subscribe import subscribe as run

    settings = DagmonitorSettings.load()

    def progress(line: str) -> None:
        click.echo(line, err=True)

    try:
        asyncio.run(run(settings, topic, group=group, limit=limit, idle=idle, progress=progress))
    except KeyboardInterrupt:
        sys.exit(130)


# -- verbs of the services: each service keeps its click commands in services/<name>/cli.py
# and registers them here, one line each.
from services.distributor.cli import report  # noqa: E402

cli.add_command(report)
from services.approval.cli import approvals, consent, covenant, token  # noqa: E402
from services.distributor.cli import evaluation  # noqa: E402

covenant.add_command(evaluation)  # the distributor builds and mails the evaluation report

cli.add_command(approvals)
cli.add_command(consent)
cli.add_command(covenant)
cli.add_command(token)
from dagmonitor_cli.generate import generate  # noqa: E402
from services.classifier.cli import classify  # noqa: E402
from services.ingest.cli import publish  # noqa: E402

cli.add_command(classify)
cli.add_command(generate)
cli.add_command(publish)
from services.retention.cli import retention  # noqa: E402

cli.add_command(retention)
# (end of service verbs)


def main() -> None:
    """Entry point of the console script."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DagmonitorError as exc:
        click.echo(f"dagmonitor: {exc}", err=True)
        sys.exit(1)
    except ValidationError as exc:  # a setting missing or invalid, e.g. the covenant's term
        click.echo(f"dagmonitor: {describe_invalid(exc)}", err=True)
        sys.exit(1)
