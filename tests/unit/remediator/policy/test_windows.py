"""Maintenance windows in Alertmanager's time_intervals shape: matching (midnight, first Sunday, negative days,
months, years, locations and DST change days) and the configuration errors, the old shape among them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.config import ConfigError
from remediator.config import MaintenanceWindow, load
from remediator.policy.windows import in_window

UTC = dt.UTC


def window(*intervals: dict[str, Any]) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"name": "w", "time_intervals": list(intervals)})


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def minutes(start: str, end: str) -> list[dt.datetime]:
    """Every minute from start (included) to end (excluded), UTC."""
    first, last = utc(start), utc(end)
    return [first + dt.timedelta(minutes=n) for n in range(int((last - first).total_seconds() // 60))]


def problems(tmp_path: Path, windows: Any) -> list[str]:
    path = tmp_path / "remediator.yml"
    path.write_text(windows if isinstance(windows, str) else yaml.safe_dump({"maintenance_windows": windows}))
    with pytest.raises(ConfigError) as caught:
        load(path)
    return [str(detail) for detail in caught.value.details]


SATURDAY_NIGHT = window(
    {"weekdays": ["saturday"], "times": [{"start_time": "22:00", "end_time": "24:00"}]},
    {"weekdays": ["sunday"], "times": [{"start_time": "00:00", "end_time": "02:00"}]},
)
FIRST_SUNDAY = window(
    {"weekdays": ["sunday"], "days_of_month": ["1:7"], "times": [{"start_time": "02:00", "end_time": "06:00"}]}
)


def sunday_new_york(start: str, end: str) -> MaintenanceWindow:
    times = [{"start_time": start, "end_time": end}]
    return window({"weekdays": ["sunday"], "times": times, "location": "America/New_York"})


SUNDAY_2AM_NEW_YORK = sunday_new_york("02:00", "03:00")


# 2024-06-01 is a Saturday, 2024-06-02 a Sunday.
@pytest.mark.parametrize(
    ("at", "inside"),
    [
        ("2024-06-01T21:59", False),
        ("2024-06-01T22:00", True),
        ("2024-06-01T23:00", True),
        ("2024-06-01T23:59", True),  # 24:00 ends the day, exclusive
        ("2024-06-02T00:00", True),
        ("2024-06-02T01:00", True),
        ("2024-06-02T01:59", True),
        ("2024-06-02T02:00", False),  # end is exclusive
        ("2024-06-02T03:00", False),
        ("2024-06-01T01:00", False),  # Saturday morning is not Saturday night (the old in_window said inside)
        ("2024-06-02T23:00", False),  # Sunday night is not Saturday night
    ],
)
def test_a_window_across_midnight_is_two_intervals_each_on_its_own_local_date(at: str, inside: bool) -> None:
    assert in_window(SATURDAY_NIGHT, utc(at)) is inside


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        ("2024-06-02T02:00", True),  # June 2024: the first Sunday is the 2nd
        ("2024-06-02T05:59", True),
        ("2024-06-02T06:00", False),
        ("2024-06-02T01:59", False),
        ("2024-06-09T03:00", False),  # second Sunday
        ("2024-09-01T03:00", True),  # September 2024 starts on a Sunday
        ("2024-09-08T03:00", False),
        ("2024-12-01T03:00", True),
        ("2024-12-07T03:00", False),  # day 7, but a Saturday
        ("2024-06-03T03:00", False),  # day 3, but a Monday
    ],
)
def test_first_sunday_of_the_month_is_days_1_to_7_that_are_sundays(at: str, inside: bool) -> None:
    assert in_window(FIRST_SUNDAY, utc(at)) is inside


@pytest.mark.parametrize(
    ("days", "at", "inside"),
    [
        ("-1", "2024-02-29T12:00", True),  # leap year
        ("-1", "2024-02-28T12:00", False),
        ("-1", "2023-02-28T12:00", True),
        ("-1", "2024-04-30T12:00", True),
        ("-1", "2024-05-31T12:00", True),
        ("-1", "2024-05-30T12:00", False),
        ("-7:-1", "2024-04-24T00:00", True),  # the last seven days of April: 24-30
        ("-7:-1", "2024-04-23T23:59", False),
        ("-7:-1", "2024-05-25T00:00", True),  # of May: 25-31
        ("-7:-1", "2024-05-24T12:00", False),
        ("31", "2024-04-30T12:00", False),  # a day the month does not have matches nothing
        ("31", "2024-05-31T12:00", True),
        ("25:31", "2024-02-29T12:00", True),  # a range past the month's end stops at its last day
        ("25:31", "2024-03-01T12:00", False),
        ("-31:-1", "2024-02-01T12:00", True),  # a negative start before the month's first day starts at day 1
        ("-31:-30", "2024-02-01T12:00", False),  # February 2024 has no 31st- or 30th-last day
        ("-31:-30", "2024-03-01T12:00", True),
    ],
)
def test_negative_days_of_month_count_back_from_the_months_last_day(days: str, at: str, inside: bool) -> None:
    assert in_window(window({"days_of_month": [days]}), utc(at)) is inside


def test_the_last_day_of_a_spring_forward_month_is_its_31st_in_a_dst_location() -> None:
    # Alertmanager before its fix (PR 5447) took March in America/New_York to have 30 days (743 hours / 24).
    last = window({"days_of_month": ["-1"], "location": "America/New_York"})
    assert in_window(last, utc("2024-03-31T16:00")) is True
    assert in_window(last, utc("2024-03-30T16:00")) is False


@pytest.mark.parametrize(
    ("field", "values", "at", "inside"),
    [
        ("months", ["december", "1:2"], "2024-12-15T00:00", True),
        ("months", ["december", "1:2"], "2025-01-15T00:00", True),
        ("months", ["december", "1:2"], "2025-02-28T23:59", True),
        ("months", ["december", "1:2"], "2025-03-01T00:00", False),
        ("months", ["March:May"], "2024-04-01T00:00", True),  # names are case-insensitive
        ("months", [7], "2024-07-04T00:00", True),  # a bare YAML number is accepted, as in Alertmanager
        ("months", ["march:may"], "2024-06-01T00:00", False),
        ("years", ["2025:2026"], "2024-12-31T23:59", False),
        ("years", ["2025:2026"], "2025-01-01T00:00", True),
        ("years", ["2025:2026"], "2026-12-31T23:59", True),
        ("years", [2027], "2027-06-01T00:00", True),
        ("years", ["2025:2026"], "2027-01-01T00:00", False),
        ("weekdays", ["monday:friday"], "2024-06-03T00:00", True),
        ("weekdays", ["monday:friday"], "2024-06-07T23:59", True),
        ("weekdays", ["monday:friday"], "2024-06-08T00:00", False),
        ("weekdays", ["saturday", "sunday"], "2024-06-02T12:00", True),
    ],
)
def test_months_years_and_weekdays_match_names_numbers_and_inclusive_ranges(
    field: str, values: list[Any], at: str, inside: bool
) -> None:
    assert in_window(window({field: values}), utc(at)) is inside


def test_an_interval_matches_only_when_every_field_it_gives_matches() -> None:
    weekday_mornings_2025 = window(
        {"weekdays": ["monday:friday"], "times": [{"start_time": "06:00", "end_time": "07:00"}], "years": ["2025"]}
    )
    assert in_window(weekday_mornings_2025, utc("2025-06-02T06:30")) is True
    assert in_window(weekday_mornings_2025, utc("2024-06-03T06:30")) is False  # a Monday, wrong year
    assert in_window(weekday_mornings_2025, utc("2025-06-01T06:30")) is False  # right hour, a Sunday
    assert in_window(weekday_mornings_2025, utc("2025-06-02T07:30")) is False


def test_an_interval_with_no_fields_matches_every_instant() -> None:
    always = window({})
    assert all(in_window(always, at) for at in minutes("2024-03-10T00:00", "2024-03-10T12:00"))


def test_a_window_is_active_when_any_of_its_intervals_matches() -> None:
    either = window({"weekdays": ["monday"]}, {"days_of_month": ["15"]})
    assert in_window(either, utc("2024-06-03T12:00")) is True  # Monday the 3rd
    assert in_window(either, utc("2024-06-15T12:00")) is True  # Saturday the 15th
    assert in_window(either, utc("2024-06-04T12:00")) is False


def test_the_weekday_is_the_local_date_of_the_instant_in_the_intervals_location() -> None:
    monday_in_tokyo = window({"weekdays": ["monday"], "location": "Asia/Tokyo"})
    assert in_window(monday_in_tokyo, utc("2024-06-02T16:00")) is True  # Sunday in UTC, Monday 01:00 in Tokyo
    assert in_window(monday_in_tokyo, utc("2024-06-03T15:00")) is False  # Monday in UTC, Tuesday 00:00 in Tokyo


def test_sunday_2am_new_york_is_0700_utc_in_january_and_0600_utc_in_july() -> None:
    assert [at for at in minutes("2024-01-07T00:00", "2024-01-08T00:00") if in_window(SUNDAY_2AM_NEW_YORK, at)] == (
        minutes("2024-01-07T07:00", "2024-01-07T08:00")
    )  # EST, UTC-5
    assert [at for at in minutes("2024-07-07T00:00", "2024-07-08T00:00") if in_window(SUNDAY_2AM_NEW_YORK, at)] == (
        minutes("2024-07-07T06:00", "2024-07-07T07:00")
    )  # EDT, UTC-4


def test_on_the_spring_forward_sunday_the_skipped_local_hour_matches_no_instant() -> None:
    # 2024-03-10: at 07:00 UTC New York's clocks go from 01:59:59 EST to 03:00 EDT; 02:00-02:59 never happens.
    day = minutes("2024-03-10T00:00", "2024-03-11T00:00")
    assert [at for at in day if in_window(SUNDAY_2AM_NEW_YORK, at)] == []
    two_to_six = sunday_new_york("02:00", "06:00")
    assert [at for at in day if in_window(two_to_six, at)] == minutes("2024-03-10T07:00", "2024-03-10T10:00")


def test_on_the_fall_back_sunday_the_repeated_local_hour_matches_both_times() -> None:
    # 2024-11-03: at 06:00 UTC New York's clocks go from 01:59:59 EDT back to 01:00 EST; 01:00-01:59 happens twice.
    day = minutes("2024-11-03T00:00", "2024-11-04T00:00")
    one_to_two = sunday_new_york("01:00", "02:00")
    assert [at for at in day if in_window(one_to_two, at)] == minutes("2024-11-03T05:00", "2024-11-03T07:00")
    assert [at for at in day if in_window(SUNDAY_2AM_NEW_YORK, at)] == minutes("2024-11-03T07:00", "2024-11-03T08:00")


def test_a_naive_instant_is_refused_rather_than_read_in_the_hosts_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_window(FIRST_SUNDAY, dt.datetime(2024, 6, 2, 3, 0))  # naive: the instant under test


def test_an_instant_in_any_zone_is_the_same_instant() -> None:
    new_york = dt.datetime(2024, 6, 1, 22, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))  # 02:30 UTC Sunday
    assert in_window(FIRST_SUNDAY, new_york) is True


@pytest.mark.parametrize(
    ("time", "said"),
    [
        ("2:00", "'2:00' is not a time of day"),
        ("24:01", "'24:01' is not a time of day"),
        ("12:60", "'12:60' is not a time of day"),
        ("noon", "'noon' is not a time of day"),
    ],
)
def test_a_badly_written_time_is_a_located_error(tmp_path: Path, time: str, said: str) -> None:
    found = problems(
        tmp_path, [{"name": "w", "time_intervals": [{"times": [{"start_time": time, "end_time": "24:00"}]}]}]
    )
    assert len(found) == 1
    assert found[0].startswith("maintenance_windows[0].time_intervals[0].times[0].start_time: ")
    assert said in found[0]


def test_an_unquoted_time_that_yaml_reads_as_a_number_says_to_quote_it(tmp_path: Path) -> None:
    text = "maintenance_windows:\n- name: w\n  time_intervals:\n  - times: [{start_time: 22:00, end_time: '24:00'}]\n"
    (found,) = problems(tmp_path, text)
    assert "times[0].start_time" in found
    assert "1320 is a number: quote times" in found


@pytest.mark.parametrize(("start", "end"), [("22:00", "02:00"), ("02:00", "02:00"), ("24:00", "24:00")])
def test_a_time_range_whose_start_is_not_before_its_end_is_refused_with_the_two_range_hint(
    tmp_path: Path, start: str, end: str
) -> None:
    (found,) = problems(
        tmp_path, [{"name": "w", "time_intervals": [{"times": [{"start_time": start, "end_time": end}]}]}]
    )
    assert found.startswith("maintenance_windows[0].time_intervals[0].times[0]: ")
    assert f"start_time {start} must be before end_time {end}" in found
    assert f"{start}-24:00 and 00:00-{end} as two intervals" in found


@pytest.mark.parametrize("zone", ["America/Nowhere", "EST+5", "../../etc/passwd", ""])
def test_an_unknown_location_is_refused(tmp_path: Path, zone: str) -> None:
    (found,) = problems(tmp_path, [{"name": "w", "time_intervals": [{"location": zone}]}])
    assert found.startswith("maintenance_windows[0].time_intervals[0].location: ")
    assert "is not an IANA time zone" in found


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("weekdays", "funday", "'funday' is not a weekday"),
        ("weekdays", "sun", "'sun' is not a weekday"),
        ("weekdays", "saturday:sunday", "runs backwards"),
        ("weekdays", "monday:tuesday:friday", "not a value or a start:end range"),
        ("days_of_month", "0", "0 is not a day of the month"),
        ("days_of_month", "32", "32 is not a day of the month"),
        ("days_of_month", "-1:5", "must end negative"),
        ("days_of_month", "10:5", "the end is always before the start"),
        ("days_of_month", "-1:-7", "the end is always before the start"),
        ("days_of_month", "first", "'first' is not a valid day of the month"),
        ("months", "13", "13 is not a month"),
        ("months", "may:march", "the end month is before the start month"),
        ("months", "smarch", "'smarch' is not a valid month"),
        ("years", "2026:2025", "the end year is before the start year"),
        ("years", "0", "0 is not a year"),
    ],
)
def test_a_bad_range_value_is_a_located_error(tmp_path: Path, field: str, value: str, said: str) -> None:
    (found,) = problems(tmp_path, [{"name": "w", "time_intervals": [{field: [value]}]}])
    assert found.startswith(f"maintenance_windows[0].time_intervals[0].{field}[0]: ")
    assert said in found


def test_an_unquoted_day_range_that_yaml_reads_as_base_60_says_to_quote_it(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "maintenance_windows:\n- name: w\n  time_intervals:\n  - days_of_month: [1:7]\n")
    assert "67 is not a day of the month" in found
    assert "quote ranges, '1:7'" in found


@pytest.mark.parametrize(
    ("windows", "said"),
    [
        ([{"name": "w", "time_intervals": []}], "maintenance_windows[0].time_intervals: "),
        ([{"name": "w"}], "maintenance_windows[0].time_intervals: Field required"),
        ([{"name": "w", "time_intervals": [{"weekdays": []}]}], "weekdays is an empty list: leave it out"),
        ([{"name": "w", "time_intervals": [{"weekday": "sunday"}]}], "time_intervals[0].weekday: Extra inputs"),
    ],
)
def test_an_empty_or_misspelt_interval_is_refused(tmp_path: Path, windows: Any, said: str) -> None:
    assert any(said in problem for problem in problems(tmp_path, windows))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            {"name": "monthly", "weekday": "sunday", "nth_of_month": 1, "start": "02:00", "end": "06:00"},
            "{name: monthly, time_intervals: [{weekdays: [sunday], days_of_month: ['1:7'], "
            "times: [{start_time: '02:00', end_time: '06:00'}]}]}",
        ),
        (
            {"name": "night", "weekday": "saturday", "start": "22:00", "end": "02:00"},
            "{name: night, time_intervals: [{weekdays: [saturday], times: [{start_time: '22:00', end_time: "
            "'24:00'}]}, {weekdays: [sunday], times: [{start_time: '00:00', end_time: '02:00'}]}]}",
        ),
        ({"name": "always", "start": "00:00", "end": "00:00"}, "{name: always, time_intervals: [{}]}"),
        (
            {"name": "fifth", "weekday": "friday", "nth_of_month": 5, "start": "00:00", "end": "00:00"},
            "{name: fifth, time_intervals: [{weekdays: [friday], days_of_month: ['29:31']}]}",
        ),
    ],
)
def test_the_old_window_shape_is_refused_with_its_new_shape_in_the_message(
    tmp_path: Path, old: dict[str, Any], new: str
) -> None:
    (found,) = problems(tmp_path, [old])
    assert found.startswith("maintenance_windows[0]: ")
    assert "the old window shape, no longer read" in found
    assert found.endswith(new)
    MaintenanceWindow.model_validate(yaml.safe_load(new))  # the hint itself is a valid window


def test_the_hint_for_the_old_first_sunday_window_means_what_the_old_window_meant(tmp_path: Path) -> None:
    old = {"name": "monthly", "weekday": "sunday", "nth_of_month": 1, "start": "02:00", "end": "06:00"}
    (found,) = problems(tmp_path, [old])
    hinted = MaintenanceWindow.model_validate(yaml.safe_load(found.split("This one is: ", 1)[1]))
    assert in_window(hinted, utc("2024-09-01T02:00"))
    assert in_window(hinted, utc("2024-06-02T05:59"))
    assert not in_window(hinted, utc("2024-09-08T03:00"))
    assert not in_window(hinted, utc("2024-06-02T06:00"))
