"""Temporary order response: planned ship date from cut-off, time zone and lead time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from activities.response import planned_ship_date

# 2025-01-13 is a Monday; January is winter time (Berlin = UTC+1)
MONDAY = date(2025, 1, 13)
FRIDAY = date(2025, 1, 17)
SATURDAY = date(2025, 1, 18)
NEXT_MONDAY = date(2025, 1, 20)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def test_before_cutoff_on_weekday_ships_same_day():
    assert planned_ship_date(utc(MONDAY, 10), "UTC", "15:00", 0) == MONDAY


def test_after_cutoff_ships_next_working_day():
    assert planned_ship_date(utc(MONDAY, 16), "UTC", "15:00", 0) == MONDAY + timedelta(days=1)


def test_friday_after_cutoff_ships_monday():
    assert planned_ship_date(utc(FRIDAY, 16), "UTC", "15:00", 0) == NEXT_MONDAY


def test_friday_before_cutoff_ships_friday():
    assert planned_ship_date(utc(FRIDAY, 9), "UTC", "15:00", 0) == FRIDAY


def test_saturday_ships_monday():
    assert planned_ship_date(utc(SATURDAY, 8), "UTC", "15:00", 0) == NEXT_MONDAY


def test_sunday_ships_monday():
    assert planned_ship_date(utc(SATURDAY + timedelta(days=1), 8), "UTC", "15:00", 0) == (
        NEXT_MONDAY
    )


def test_cutoff_is_evaluated_in_location_time_zone():
    # 14:30 UTC is 15:30 in Berlin in winter: past the Berlin location's 15:00 cut-off
    assert planned_ship_date(utc(MONDAY, 14, 30), "Europe/Berlin", "15:00", 0) == date(2025, 1, 14)
    assert planned_ship_date(utc(MONDAY, 14, 30), "UTC", "15:00", 0) == MONDAY


def test_cutoff_follows_summer_time():
    # 13:30 UTC is 15:30 in Berlin in July (UTC+2)
    july = date(2025, 7, 14)  # a Monday
    assert planned_ship_date(utc(july, 13, 30), "Europe/Berlin", "15:00", 0) == date(2025, 7, 15)
    assert planned_ship_date(utc(july, 12, 30), "Europe/Berlin", "15:00", 0) == july


def test_local_date_is_used_across_midnight():
    # Monday 23:30 UTC is already Tuesday 00:30 in Berlin, before its cut-off
    assert planned_ship_date(utc(MONDAY, 23, 30), "Europe/Berlin", "15:00", 0) == date(2025, 1, 14)


def test_non_utc_input_time_is_converted():
    new_york = timezone(timedelta(hours=-5))
    now = datetime(2025, 1, 13, 9, 30, tzinfo=new_york)  # 15:30 Berlin
    assert planned_ship_date(now, "Europe/Berlin", "15:00", 0) == date(2025, 1, 14)


def test_lead_time_adds_working_days():
    assert planned_ship_date(utc(MONDAY, 10), "UTC", "15:00", 2) == date(2025, 1, 15)


def test_lead_time_skips_the_weekend():
    assert planned_ship_date(utc(FRIDAY, 10), "UTC", "15:00", 1) == NEXT_MONDAY
    assert planned_ship_date(utc(FRIDAY, 16), "UTC", "15:00", 1) == date(2025, 1, 21)
