-- Stage 3: per (arm, segment value) sufficient statistics of one metric's per-unit values:
-- n, sums, sums of squares and cross-products of x (numerator), y (denominator) and their
-- pre-period counterparts xp, yp. Parameters: metric (name), x, y, xp, yp (expressions
-- over unit_values; y and yp are 1 for mean and proportion metrics), x_cap (the cap on x:
-- a number, a percentile of x over the units of the same segment value (a window), or NULL). The third moments sum_x2y, sum_xy2 and
-- sum_y3 feed the small-sample (jackknife leverage) correction of ratio metrics.
WITH v AS (
    SELECT
        arm,
        segment_value,
        CAST($x AS DOUBLE) AS x_raw,
        CAST($y AS DOUBLE) AS y,
        CAST($xp AS DOUBLE) AS xp,
        CAST($yp AS DOUBLE) AS yp,
        $x_cap AS x_cap
    FROM unit_values
),
capped AS (
    SELECT
        arm,
        segment_value,
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
    COUNT(*) AS n,
    SUM(x) AS sum_x,
    SUM(x * x) AS sum_x2,
    SUM(y) AS sum_y,
    SUM(y * y) AS sum_y2,
    SUM(x * y) AS sum_xy,
    SUM(x * x * y) AS sum_x2y,
    SUM(x * y * y) AS sum_xy2,
    SUM(y * y * y) AS sum_y3,
    SUM(xp) AS sum_xp,
    SUM(xp * xp) AS sum_xp2,
    SUM(x * xp) AS sum_x_xp,
    SUM(yp) AS sum_yp,
    SUM(yp * yp) AS sum_yp2,
    SUM(xp * yp) AS sum_xp_yp,
    SUM(x * yp) AS sum_x_yp,
    SUM(y * xp) AS sum_y_xp,
    SUM(y * yp) AS sum_y_yp
FROM capped
GROUP BY arm, segment_value
