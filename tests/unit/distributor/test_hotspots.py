"""The hotspot report's ranking: real places at PC6 and PC4, each in one district, the top N
with a minimum count, and the change against the previous period."""

from __future__ import annotations

from services.distributor.reports import PostcodeCount, change_text, rank_hotspots


def test_a_postcode_is_listed_once_in_the_district_that_holds_it() -> None:
    # 3511CE is Binnenstad in wijken.csv, whatever district the entries carry.
    hotspots = rank_hotspots(
        [
            PostcodeCount("WK034405", "Binnenstad", "3511CE", 3),
            PostcodeCount("WK034407", "Zuidwest", "3511CE", 2),
            PostcodeCount(None, None, "3511CE", 1),
        ]
    )
    assert [(p.place, p.district, p.count) for p in hotspots.pc6] == [("3511CE", "Binnenstad", 6)]


def test_an_unknown_postcode_goes_to_the_district_most_of_its_entries_carry() -> None:
    hotspots = rank_hotspots(
        [PostcodeCount("WK1", "Noord", "9999AA", 3), PostcodeCount("WK2", "Zuid", "9999AA", 2)]
    )
    assert [(p.place, p.district) for p in hotspots.pc6] == [("9999AA", "Noord")]


def test_top_n_and_minimum_count() -> None:
    counts = [PostcodeCount("WK1", "Noord", f"35{i:02d}AA", 20 - i) for i in range(20)]
    counts += [PostcodeCount("WK1", "Noord", "3599ZZ", 1)]
    hotspots = rank_hotspots(counts, top=5, min_count=2)
    assert [p.rank for p in hotspots.pc6] == [1, 2, 3, 4, 5]
    assert all(p.count >= 2 for p in rank_hotspots(counts, top=50).pc6)
    assert "3599ZZ" not in [p.place for p in rank_hotspots(counts, top=50).pc6]


def test_ties_at_the_last_rank_share_it() -> None:
    counts = [PostcodeCount("WK1", "Noord", f"351{i}AA", 3) for i in range(4)]
    assert [p.rank for p in rank_hotspots(counts, top=2).pc6] == [1, 1, 1, 1]


def test_change_against_the_previous_period() -> None:
    hotspots = rank_hotspots(
        [
            PostcodeCount("WK1", "Noord", "3551AA", 5),
            PostcodeCount("WK1", "Noord", "3551BB", 2),
            PostcodeCount("WK1", "Noord", "3551CC", 3),
        ],
        [
            PostcodeCount("WK1", "Noord", "3551AA", 2),
            PostcodeCount("WK1", "Noord", "3551CC", 4),
            PostcodeCount("WK1", "Noord", None, 1),
        ],
    )
    assert [(p.place, p.count, p.previous, p.change) for p in hotspots.pc6] == [
        ("3551AA", 5, 2, "+3"),
        ("3551CC", 3, 4, "-1"),
        ("3551BB", 2, 0, "nieuw"),
    ]
    (district,) = hotspots.districts
    assert (district.count, district.previous, district.change) == (10, 7, "+3")
    assert (hotspots.total, hotspots.previous_total, hotspots.change) == (10, 7, "+3")


def test_change_text() -> None:
    assert [change_text(3, 3), change_text(0, 0), change_text(0, 2), change_text(1, 0)] == [
        "0",
        "0",
        "-2",
        "nieuw",
    ]


def test_heat_shades_follow_the_hottest_district() -> None:
    hotspots = rank_hotspots(
        [
            PostcodeCount("WK1", "Noord", "3551AA", 8),
            PostcodeCount("WK2", "Zuid", "3521AA", 2),
            PostcodeCount("WK3", "West", "3531AA", 1),
        ]
    )
    assert [d.heat for d in hotspots.districts] == [4, 1, 1]
