"""The local platform itself: a cold broker start from the cached jars, up/status/down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagmonitor.errors import PlatformError
from dagmonitor.settings import DagmonitorSettings, local_dir
from dagmonitor_cli.platform import kafka, process, tls
from dagmonitor_cli.platform.kafka import KafkaLayout
from dagmonitor_cli.platform.stack import LocalStack
from deploy.k8s.access import ADMIN

pytestmark = pytest.mark.integration


def test_a_second_broker_starts_cold_from_cached_jars(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    layout = KafkaLayout(tmp_path / "kafka")
    # Reuse the stack's jar folder: a cold start formats fresh storage but downloads nothing.
    layout.root.mkdir()
    layout.libs.symlink_to(local_dir() / "kafka" / "libs")
    port, controller = process.free_port(), process.free_port()
    started = kafka.start(layout, port=port, controller_port=controller, timeout=120)
    admin = layout.client_settings(started.bootstrap, ADMIN)
    try:
        assert not started.downloaded_jars
        assert started.formatted
        assert (layout.data / "meta.properties").is_file()
        assert kafka.broker_ready(admin)
    finally:
        process.stop_pid(started.pid, timeout=60)
    assert not process.pid_alive(started.pid)
    assert not kafka.broker_ready(admin)


def test_the_broker_refuses_plaintext_a_wrong_password_and_an_untrusted_ca(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    """Authentication is real: only SCRAM over TLS to the local CA gets a metadata answer."""
    from pydantic import SecretStr

    assert stack.kafka_security_protocol == "SASL_SSL"
    assert kafka.broker_ready(stack)
    plaintext = DagmonitorSettings(kafka_bootstrap=stack.kafka_bootstrap)
    wrong = stack.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})
    unknown = stack.model_copy(
        update={"kafka_sasl_username": "nobody", "kafka_sasl_password": SecretStr("x")}
    )
    other_ca = KafkaLayout(tmp_path / "other")
    tls.ensure(other_ca.tls)
    untrusted = stack.model_copy(update={"kafka_ca_file": other_ca.tls.ca})
    for refused in (plaintext, wrong, unknown, untrusted):
        assert not kafka.broker_ready(refused)


def test_up_again_reuses_the_running_stack(stack: DagmonitorSettings) -> None:
    lines: list[str] = []
    state = LocalStack().up(echo=lines.append)
    assert set(state) == {"kafka", "postgres", "smtp"}
    assert all(c.note in ("already running", "reused") for c in state.values()), lines


def test_status_command_reports_every_server_up(stack: DagmonitorSettings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagmonitor_cli", "status"],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "kafka",
        "postgres",
        "smtp",
    ]
    assert all(line.split()[-1] == "up" for line in result.stdout.splitlines())
    assert ":dagmonitor@" not in result.stdout, "the database password is redacted"


def test_storage_formats_with_a_cluster_id_that_starts_with_a_dash(
    stack: DagmonitorSettings, tmp_path: Path
) -> None:
    # Random base64url ids start with "-" one time in 64; argparse must not take it for a flag.
    layout = KafkaLayout(tmp_path / "kafka")
    layout.root.mkdir()
    layout.libs.symlink_to(local_dir() / "kafka" / "libs")
    layout.cluster_id_file.write_text("-AbCdEfGhIjKlMnOpQrStU\n")
    kafka.write_config(layout, process.free_port(), process.free_port())
    kafka.format_storage(layout)
    assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in (layout.data / "meta.properties").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_a_cluster_for_a_clone_the_postgres_user_cannot_enter_lives_outside_it(
    tmp_path: Path,
) -> None:
    """As root with the clone in a 0700 folder, initdb (as ``postgres``) could not read the
    clone: the cluster goes to a folder of its own that the server's user can enter."""
    from dagmonitor_cli.platform import postgres

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    local = home / "clone with spaces" / ".local"
    root = postgres.cluster_root(local)
    assert not root.is_relative_to(home)
    assert root.is_relative_to(postgres.SHARED_ROOT)
    assert root == postgres.cluster_root(local)  # the same clone keeps its folder
    import tempfile

    open_home = Path(tempfile.mkdtemp(prefix="dagmonitor-open-", dir="/tmp"))
    try:
        open_home.chmod(0o755)
        assert postgres.cluster_root(open_home / ".local") == open_home / ".local" / "postgres"
    finally:
        open_home.rmdir()
    layout = postgres.PostgresLayout(root)
    port = process.free_port()
    started = postgres.start(layout, port=port, timeout=120)
    try:
        assert started.created
        assert postgres.server_ready(started.url)
    finally:
        postgres.stop(layout)
        import shutil

        shutil.rmtree(root.parent, ignore_errors=True)


def test_up_reuses_an_external_broker_with_the_environments_credentials(
    stack: DagmonitorSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAGMONITOR_KAFKA_BOOTSTRAP names a broker the stack does not manage: it is reached with
    the DAGMONITOR_KAFKA_* credentials of the environment, and no user or ACL is made there."""
    import json

    from dagmonitor_cli.platform.stack import LocalStackSettings

    assert stack.kafka_credentials_file is not None and stack.kafka_ca_file is not None
    password = json.loads(stack.kafka_credentials_file.read_text())["dagmonitor-tests"]
    for key, value in {
        "DAGMONITOR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "DAGMONITOR_KAFKA_SASL_USERNAME": "dagmonitor-tests",
        "DAGMONITOR_KAFKA_SASL_PASSWORD": password,
        "DAGMONITOR_KAFKA_CA_FILE": str(stack.kafka_ca_file),
    }.items():
        monkeypatch.setenv(key, value)
    external = LocalStack(
        tmp_path / ".local",
        LocalStackSettings(kafka_bootstrap=stack.kafka_bootstrap, ready_timeout_seconds=20),
    )
    component = external._kafka_up(None)
    assert (component.managed, component.note) == (False, "reused")
    assert not (tmp_path / ".local" / "kafka").exists(), "no users, ACLs or TLS of ours there"
    monkeypatch.setenv("DAGMONITOR_KAFKA_SASL_PASSWORD", "wrong")
    with pytest.raises(PlatformError):
        external._kafka_up(None)
