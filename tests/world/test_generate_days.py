"""Users of the synthetic world come back on several days, as real users do."""

from __future__ import annotations

import duckdb


def test_users_visit_on_several_days(small_world):
    """Each session's time is drawn uniformly over the period, whoever its user: users with several
    sessions spread over several days (the sorted draws once put 99.85% of users on exactly one day),
    and the first day holds about 1/days of every user's sessions, not the lowest user ids."""
    con = duckdb.connect()
    sessions = f"read_parquet('{small_world}/sessions/*.parquet')"
    days_per_user, first_day_ids = con.execute(f"""
        WITH per_user AS (SELECT unit_id, count(*) AS n, count(DISTINCT ts::DATE) AS days
                          FROM {sessions} GROUP BY unit_id)
        SELECT (SELECT avg(days) FROM per_user WHERE n >= 5),
               (SELECT count(DISTINCT unit_id) FROM {sessions}
                WHERE ts::DATE = (SELECT min(ts)::DATE FROM {sessions}))
                / (SELECT count(DISTINCT unit_id) FROM {sessions})::DOUBLE""").fetchone()
    assert days_per_user > 3  # 5+ sessions over the 5 days land on several of them
    assert first_day_ids > 0.1  # many users are seen on day one, not a block of the lowest ids
