-- Stage 2: one row per (unit, arm, segment value) with the unit's totals over its sessions.
-- Parameters: source (session_values, or for a cumulative daily look its sessions up to that
-- day), segment (a column of the source or the literal 'all'), user_exp / user_select (the unit
-- aggregates of user-defined metrics' session columns).
-- The pre-period values of the same unit (CUPED covariates, sql/02_pre_unit_values.sql) are
-- joined by unit_id; units with no pre-period activity get 0, which keeps the adjustment
-- unbiased (the covariate is still measured before treatment and the same rule applies in both arms).
WITH exp AS (
    SELECT
        unit_id,
        arm,
        $segment AS segment_value,
        SUM(impressions) AS impressions,
        SUM(clicks) AS clicks,
        SUM(purchases) AS purchases,
        SUM(orders) AS orders,
        SUM(revenue) AS revenue,
        SUM(judged_impressions) AS judged_impressions,
        SUM(grade_sum) AS grade_sum,
        SUM(judged_pages) AS judged_pages,
        SUM(good_pages) AS good_pages,
        COUNT(*) AS sessions$user_exp
    FROM $source
    WHERE arm IS NOT NULL
    GROUP BY unit_id, arm, $segment
)
SELECT
    e.*,
    COALESCE(p.impressions, 0) AS pre_impressions,
    COALESCE(p.clicks, 0) AS pre_clicks,
    COALESCE(p.purchases, 0) AS pre_purchases,
    COALESCE(p.orders, 0) AS pre_orders,
    COALESCE(p.revenue, 0) AS pre_revenue,
    COALESCE(p.judged_impressions, 0) AS pre_judged_impressions,
    COALESCE(p.grade_sum, 0) AS pre_grade_sum,
    COALESCE(p.judged_pages, 0) AS pre_judged_pages,
    COALESCE(p.good_pages, 0) AS pre_good_pages,
    COALESCE(p.sessions, 0) AS pre_sessions$user_select
FROM exp e
LEFT JOIN pre_unit_values p ON p.unit_id = e.unit_id
