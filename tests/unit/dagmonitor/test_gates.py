"""The gate table (dagmonitor/gates.py) against the covenant, row by row.

The expected rows are written out by hand from the covenant ("De politie verstrekt slechts
strafrechtelijke gegevens na toestemming van het bevoegd gezag, zijnde het OM"; victims "na
afstemming met het inbrakenteam"), not derived from the table.
"""

from __future__ import annotations

import pytest

from dagmonitor import gates
from dagmonitor.gates import Authority, GateCategory, GateKind

OM, BURGLARY, DISTRICT = Authority.OM, Authority.POLICE_BURGLARY_TEAM, Authority.POLICE_DISTRICT
CHAIN, CONSENT = GateKind.CHAIN, GateKind.STANDING_CONSENT

COVENANT = [
    (GateCategory.SUSPECT, CHAIN, (OM,)),
    (GateCategory.PERSON_OF_INTEREST, CHAIN, (OM,)),
    (GateCategory.VICTIM, CHAIN, (BURGLARY, OM)),
    (GateCategory.YOUTH_NUISANCE_DETAIL, CHAIN, (DISTRICT,)),
    (GateCategory.DAGMONITOR, CONSENT, (OM,)),
    (GateCategory.VEHICLE_SIGNAL, CONSENT, (OM,)),
]


def test_one_row_per_category_and_no_other() -> None:
    categories = [row.category for row in gates.GATE_ROWS]
    assert len(categories) == len(set(categories))
    assert set(categories) == set(GateCategory)
    assert [row[0] for row in COVENANT] == categories


@pytest.mark.parametrize(("category", "kind", "authorities"), COVENANT, ids=str)
def test_row(category: GateCategory, kind: GateKind, authorities: tuple[Authority, ...]) -> None:
    row = gates.gate_of(category)
    assert (row.kind, row.authorities) == (kind, authorities)
    assert row.covenant.strip()  # every row names the covenant text it rests on
    assert gates.needs_consent(category) == (kind is CONSENT)
    if kind is CHAIN:
        assert gates.chain_of(category.value) == authorities
        with pytest.raises(ValueError, match="per-case"):
            gates.consent_authorities(category)
    else:
        assert gates.consent_authorities(category) == authorities
        with pytest.raises(ValueError, match="standing consent"):
            gates.chain_of(category)


def test_every_chain_ends_with_its_competent_authority_and_every_consent_is_the_oms() -> None:
    # Criminal data (strafrechtelijke gegevens) only with the OM's consent: the OM is the last
    # step of every chain of personal criminal data and the only grantor of a consent.
    for category in (GateCategory.SUSPECT, GateCategory.PERSON_OF_INTEREST, GateCategory.VICTIM):
        assert gates.chain_of(category)[-1] is OM
    for category in gates.CONSENT_CATEGORIES:
        assert gates.consent_authorities(category) == (OM,)


def test_the_consent_categories() -> None:
    assert gates.CONSENT_CATEGORIES == (GateCategory.DAGMONITOR, GateCategory.VEHICLE_SIGNAL)


def test_an_unknown_category_has_no_gate() -> None:
    with pytest.raises(ValueError):
        gates.gate_of("WITNESS")
