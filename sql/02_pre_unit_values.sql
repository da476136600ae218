-- The pre-period totals of each unit (CUPED covariates), computed once per analysis.
-- Parameters: user_pre (the unit aggregates of user-defined metrics' session columns);
-- pre_filter limits the pre-period to the configured window before the experiment's first day.
SELECT
    unit_id,
    SUM(impressions) AS impressions,
    SUM(clicks) AS clicks,
    SUM(purchases) AS purchases,
    SUM(orders) AS orders,
    SUM(revenue) AS revenue,
    SUM(judged_impressions) AS judged_impressions,
    SUM(grade_sum) AS grade_sum,
    SUM(judged_pages) AS judged_pages,
    SUM(good_pages) AS good_pages,
    COUNT(*) AS sessions$user_pre
FROM pre_session_values
WHERE $pre_filter
GROUP BY unit_id
