-- The totals of each unit's sessions, per the grouping keys: the experiment's units per arm and
-- segment value (sql/02_unit_values.sql), or the pre-period's units (CUPED covariates).
-- Parameters: keys (the grouping columns as selected) and group_by (the same, as grouped),
-- source, filter, user_totals (the unit aggregates of user-defined metrics' session columns).
SELECT
    $keys,
    SUM(impressions) AS impressions,
    SUM(clicks) AS clicks,
    SUM(purchases) AS purchases,
    SUM(orders) AS orders,
    SUM(revenue) AS revenue,
    SUM(judged_impressions) AS judged_impressions,
    SUM(grade_sum) AS grade_sum,
    SUM(judged_pages) AS judged_pages,
    SUM(good_pages) AS good_pages,
    COUNT(*) AS sessions$user_totals
FROM $source
WHERE $filter
GROUP BY $group_by
