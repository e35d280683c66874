"""The one image (Dockerfile; no Docker engine here to build it): it runs as a non-root user,
copies what exists, and its layout (code in /app, schemas beside it) lets every service start."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from deploy.k8s.access import ACCESS

REPO = Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(maxsplit=1)[0], ln.split(maxsplit=1)[1]) for ln in lines]


def test_runs_any_service_as_a_non_root_user() -> None:
    steps = _instructions()
    assert ("USER", "10001:10001") in steps
    assert ("ENTRYPOINT", '["python", "-m"]') in steps
    for source in (
        args.split()[0] for kind, args in steps if kind == "COPY" and "--from" not in args
    ):
        assert (REPO / source).exists(), source
    for row in ACCESS:
        assert (REPO / "services" / row.service / "__main__.py").is_file(), row.service


def test_the_image_layout_finds_schemas_and_services(tmp_path: Path) -> None:
    """/app as the Dockerfile lays it out (dagmonitor, services, schemas; no repository)."""
    app = tmp_path / "app"
    for part in ("dagmonitor", "services", "schemas"):
        shutil.copytree(REPO / part, app / part, ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "import dagmonitor.codec as c, services.classifier.annex as a, "
        "services.distributor.rendering as r;"
        "codec = c.default_codec();"
        "codec.decode(codec.encode(c.DEAD_LETTER, {'reason': 'not_avro', 'detail': '', "
        "'source_topic': 't', 'source_partition': None, 'source_offset': None, "
        "'source_key': None, 'raw': b'', 'service': 's', 'failed_at': __import__('datetime')"
        ".datetime.now(__import__('datetime').UTC)}));"
        "print(c.DEFAULT_SCHEMA_DIR.parent, len(list(c.DEFAULT_SCHEMA_DIR.glob('*.avsc'))), "
        "a.ANNEX_FILE.is_file(), r.TEMPLATES.is_dir())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    where, schemas, annex, templates = result.stdout.split()
    assert (where, annex, templates) == (str(app), "True", "True")
    assert int(schemas) >= 10
    assert re.search(r"^ENV .*PYTHONPATH=/app", (REPO / "Dockerfile").read_text(), re.M | re.S)
