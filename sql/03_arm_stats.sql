-- Stage 3: per (arm, segment value) sufficient statistics of one metric's per-unit values:
-- n, sums, sums of squares and cross-products of x (numerator), y (denominator) and their
-- pre-period counterparts xp, yp. Parameters: metric (name); rows: one SELECT, or a UNION ALL of
-- SELECTs, giving per unit arm, segment_value, w (the unit's weight: 1, or +1 / -1 for the new and
-- previous states of sql/02_cumulative_unit_states.sql), x_raw, y, xp, yp (y and yp are 1 for mean
-- and proportion metrics) and x_cap (the cap on x: a number, a percentile of x over the units of
-- the same segment value (a window), or NULL). The third moments sum_x2y, sum_xy2 and sum_y3 feed
-- the small-sample (jackknife leverage) correction of ratio metrics.
WITH v AS (
$rows
),
capped AS (
    SELECT
        arm,
        segment_value,
        w,
        CASE WHEN x_cap IS NOT NULL AND x_raw > x_cap THEN x_cap ELSE x_raw END AS x,
        y,
        xp,
        yp
    FROM v
)
SELECT
    '$metric' AS metric,
    arm,
    segment_value,
    SUM(w) AS n,
    SUM(w * x) AS sum_x,
    SUM(w * x * x) AS sum_x2,
    SUM(w * y) AS sum_y,
    SUM(w * y * y) AS sum_y2,
    SUM(w * x * y) AS sum_xy,
    SUM(w * x * x * y) AS sum_x2y,
    SUM(w * x * y * y) AS sum_xy2,
    SUM(w * y * y * y) AS sum_y3,
    SUM(w * xp) AS sum_xp,
    SUM(w * xp * xp) AS sum_xp2,
    SUM(w * x * xp) AS sum_x_xp,
    SUM(w * yp) AS sum_yp,
    SUM(w * yp * yp) AS sum_yp2,
    SUM(w * xp * yp) AS sum_xp_yp,
    SUM(w * x * yp) AS sum_x_yp,
    SUM(w * y * xp) AS sum_y_xp,
    SUM(w * y * yp) AS sum_y_yp
FROM capped
GROUP BY arm, segment_value
