-- The totals of each unit's sessions, per the grouping keys: the experiment's units per arm and
-- segment value (sql/02_unit_values.sql), or the pre-period's units (CUPED covariates).
-- Parameters: keys (the grouping columns as selected) and group_by (the same, as grouped),
-- source, filter, user_totals (the unit aggregates of user-defined metrics' session columns).
-- Counts are cast back to BIGINT: duckdb sums BIGINT into HUGEINT, which makes every later
-- window and sum over them slower.
SELECT
    $keys,
    CAST(SUM(impressions) AS BIGINT) AS impressions,
    CAST(SUM(clicks) AS BIGINT) AS clicks,
    CAST(SUM(purchases) AS BIGINT) AS purchases,
    CAST(SUM(orders) AS BIGINT) AS orders,
    SUM(revenue) AS revenue,
    CAST(SUM(judged_impressions) AS BIGINT) AS judged_impressions,
    CAST(SUM(grade_sum) AS BIGINT) AS grade_sum,
    CAST(SUM(judged_pages) AS BIGINT) AS judged_pages,
    CAST(SUM(good_pages) AS BIGINT) AS good_pages,
    COUNT(*) AS sessions$user_totals
FROM $source
WHERE $filter
GROUP BY $group_by
