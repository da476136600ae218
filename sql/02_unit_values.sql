-- Stage 2: one row per (unit, arm, segment value) with the unit's totals over its sessions.
-- Parameters: unit_totals (sql/02_unit_totals.sql by unit, arm and segment value), user_select
-- (the pre-period columns of user-defined metrics).
-- The pre-period totals of the same unit (CUPED covariates, table pre_unit_values) are
-- joined by unit_id; units with no pre-period activity get 0, which keeps the adjustment
-- unbiased (the covariate is still measured before treatment and the same rule applies in both arms).
WITH exp AS (
$unit_totals
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
