-- Stage 2 for cumulative daily looks, in one pass: from stage 2 at (unit, arm, segment value, day)
-- grain, each unit's running totals over its sessions of the segment value up to and including each
-- of its active days ("new" state) and up to its previous active day ("prev_" columns; is_first
-- marks the unit's first day in the value). The overall looks have the one segment value 'all'.
-- A unit's contribution to any per-arm sum at look d is f(its state at its last active day <= d),
-- so summing f(new) - f(prev) over the unit-days <= d telescopes to the look's sum: stage 3 then
-- weights new states +1 and previous states -1, and the caller accumulates the per-day sums.
-- Parameters: unit_values (the stage-2 query by segment value and day), cumulative / previous (per
-- unit column: SUM or MAX over the window, and the same up to the previous row), pre_columns (the
-- pre-period covariates, constant per unit).
SELECT
    unit_id,
    arm,
    segment_value,
    day,
    ROW_NUMBER() OVER running = 1 AS is_first$cumulative$previous$pre_columns
FROM (
$unit_values
) unit_values
WINDOW
    running AS (PARTITION BY unit_id, arm, segment_value ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
    before AS (PARTITION BY unit_id, arm, segment_value ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
