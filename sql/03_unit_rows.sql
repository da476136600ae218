-- One metric's per-unit rows for stage 3 (sql/03_arm_stats.sql's rows parameter).
-- Parameters: source (unit_values, or unit_states), weight (1, -1), x, y, xp, yp (the metric's
-- expressions over the source's columns), x_cap (see stage 3), filter (TRUE, or NOT is_first
-- for previous states: a unit's first day has none).
    SELECT
        arm,
        segment_value,
        $weight AS w,
        CAST($x AS DOUBLE) AS x_raw,
        CAST($y AS DOUBLE) AS y,
        CAST($xp AS DOUBLE) AS xp,
        CAST($yp AS DOUBLE) AS yp,
        $x_cap AS x_cap
    FROM $source
    WHERE $filter
