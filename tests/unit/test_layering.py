"""The import rules of the tree, checked over every module's imports (``ast``, function-level
imports included):

- ``dagmonitor`` (the runtime library) imports neither ``services`` nor ``dagmonitor_cli``;
- a service imports no other service and not the composition root (``dagmonitor_cli``);
- a domain module imports only the standard library, pure libraries and other domain modules
  (never an adapter: Kafka, PostgreSQL, SMTP, HTTP, metrics, or the project's wiring).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dagmonitor", "dagmonitor_cli", "services")

DOMAIN = frozenset(
    {
        "dagmonitor.clock",
        "dagmonitor.codec",
        "dagmonitor.covenant",
        "dagmonitor.deletion",
        "dagmonitor.errors",
        "dagmonitor.gates",
        "dagmonitor.httpauth",
        "dagmonitor.jsonio",
        "dagmonitor.rejection",
        "dagmonitor.schema_evolution",
        "dagmonitor.topics",
        "dagmonitor.validation",
        "services.approval.consent",
        "services.approval.domain",
        "services.approval.errors",
        "services.classifier.annex",
        "services.classifier.escalation",
        "services.classifier.field_sets",
        "services.classifier.policy",
        "services.classifier.versions",
        "services.distributor.areas",
        "services.distributor.categories",
        "services.distributor.entitlements",
        "services.distributor.errors",
        "services.distributor.evaluation",
        "services.distributor.reports",
        "services.distributor.schedule",
        "services.distributor.supplement",
        "services.ingest.municipal",
        "services.ingest.photos",
        "services.ingest.pipeline",
        "services.retention.policy",
    }
)
"""The pure modules: the covenant's rules and the record formats, testable without servers."""

PURE_LIBRARIES = frozenset({"fastavro", "PIL"})
"""Third-party libraries a domain module may use: computation only, no I/O."""


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


MODULES = dict(_modules())


def imports_of(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports, absolute, at any depth of its code."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from dagmonitor import topics`` imports the module dagmonitor.topics
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _service(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def violations(module: str, imported: set[str]) -> list[str]:
    """The rules ``module`` breaks by importing ``imported`` (empty: none)."""
    broken = []
    for name in sorted(imported):
        top = _top(name)
        if _top(module) == "dagmonitor" and top in ("services", "dagmonitor_cli"):
            broken.append(f"the runtime imports {name}")
        if _top(module) == "services":
            if top == "dagmonitor_cli":
                broken.append(f"a service imports the composition root ({name})")
            other = _service(name)
            if other is not None and other != _service(module):
                broken.append(f"service {_service(module)} imports service {other} ({name})")
        if module in DOMAIN and not (
            name in DOMAIN
            or top in sys.stdlib_module_names
            or top in PURE_LIBRARIES
            or name in ("dagmonitor", "services")
            or (name in MODULES and name.count(".") <= 1 and top == "services")  # packages
        ):
            broken.append(f"domain module imports {name}")
    return broken


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_keeps_the_import_rules(module: str) -> None:
    assert violations(module, imports_of(module, MODULES[module])) == []


def test_every_domain_module_exists() -> None:
    assert sorted(DOMAIN - set(MODULES)) == []


@pytest.mark.parametrize(
    ("module", "imported", "rule"),
    [
        ("dagmonitor.processor", {"services.ingest.app"}, "the runtime imports"),
        ("dagmonitor.streaming", {"dagmonitor_cli.cli"}, "the runtime imports"),
        ("services.retention.app", {"services.distributor.schedule"}, "imports service"),
        ("services.ingest.cli", {"dagmonitor_cli.generate"}, "composition root"),
        ("services.classifier.policy", {"asyncpg"}, "domain module imports"),
        ("services.distributor.reports", {"services.distributor.store"}, "domain module"),
        ("dagmonitor.validation", {"dagmonitor.deadletter"}, "domain module imports"),
    ],
)
def test_each_rule_catches_its_breach(module: str, imported: set[str], rule: str) -> None:
    (broken,) = violations(module, imported)
    assert rule in broken


def test_the_composition_root_may_import_services() -> None:
    assert violations("dagmonitor_cli.cli", {"services.ingest.cli", "aiokafka"}) == []
