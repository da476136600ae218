-- Stage 3: per (arm, segment value[, day]) sufficient statistics of every metric, in one scan of the
-- per-unit rows: n, and the sums of products of each metric's per-unit values x (numerator, after
-- its cap), y (denominator; ratio metrics only) and their pre-period counterparts xp, yp (only with
-- a pre-period). The third moments (x²y, xy², y³) feed the small-sample (jackknife leverage)
-- correction of ratio metrics.
-- Parameters:
--   source: one row per unit (stage 2), or per unit-day with the unit's new and previous
--     cumulative states (sql/02_cumulative_unit_states.sql);
--   prev_weight: 0, or for unit-days 0 on a unit's first day and 1 after it;
--   look / look_key: nothing, or for unit-days the day column (selected / grouped by);
--   values: per metric m<i>, its raw x, y, xp, yp over the source's columns, the previous
--     state's x and y (unit-days), and the cap on x: a number, or a percentile of x over the units
--     of the same segment value (a window);
--   capped: per metric, x and the previous x after the cap;
--   sums: n and each sum, as Σ f(new) − prev_weight · f(previous): summed over a look's
--     unit-days this telescopes to the sum over its units of f(their state at the look).
WITH v AS (
    SELECT
        arm,
        segment_value$look,
        $prev_weight AS prev_weight$values
    FROM $source
),
capped AS (
    SELECT
        arm,
        segment_value$look,
        prev_weight$capped
    FROM v
)
SELECT
    arm,
    segment_value$look$sums
FROM capped
GROUP BY arm, segment_value$look_key
