-- Long tail and information bubble, from any event log with arms.
-- Tail items: the bottom 80% of the catalog by pre-period impressions (items never shown in the
-- pre-period are tail). Stage A: per-user values (with their sufficient statistics computed by
-- the caller's stage-3 pattern); stage B: per-arm exposure coverage and Gini.
-- Parameters: head_share (0.2: the top 20% of items by pre-period impressions are head).
CREATE OR REPLACE TEMP TABLE item_popularity AS
WITH pre AS (
    SELECT item_id, COUNT(*) AS n FROM pre_impressions GROUP BY item_id
),
ranked AS (
    SELECT
        it.item_id,
        it.category,
        CAST(COALESCE(pre.n, 0) AS DOUBLE) AS pre_impressions,
        ROW_NUMBER() OVER (ORDER BY COALESCE(pre.n, 0) DESC, it.item_id) AS popularity_rank,
        COUNT(*) OVER () AS n_items
    FROM items it
    LEFT JOIN pre ON pre.item_id = it.item_id
)
SELECT
    item_id,
    category,
    CASE WHEN popularity_rank > $head_share * n_items THEN 1 ELSE 0 END AS is_tail,
    -- novelty: -log2 of the item's smoothed share of pre-period impressions
    -LN((pre_impressions + 1) / (SUM(pre_impressions) OVER () + n_items)) / LN(2) AS novelty
FROM ranked;

CREATE OR REPLACE TEMP TABLE long_tail_units AS
WITH imp AS (
    SELECT s.unit_id, s.arm, p.category, p.is_tail, p.novelty, i.clicked
    FROM impressions i
    JOIN sessions s ON s.session_id = i.session_id
    JOIN item_popularity p ON p.item_id = i.item_id
    WHERE s.arm IS NOT NULL
),
per_category AS (
    SELECT unit_id, arm, category, CAST(COUNT(*) AS DOUBLE) AS n FROM imp GROUP BY unit_id, arm, category
),
entropy AS (
    SELECT
        c.unit_id,
        -SUM((c.n / t.total) * LN(c.n / t.total)) / LN(2) AS category_entropy
    FROM per_category c
    JOIN (SELECT unit_id, SUM(n) AS total FROM per_category GROUP BY unit_id) t ON t.unit_id = c.unit_id
    GROUP BY c.unit_id
)
SELECT
    u.unit_id,
    u.arm,
    u.impressions,
    u.tail_impressions,
    u.clicks,
    u.tail_clicks,
    u.novelty_sum,
    e.category_entropy
FROM (
    SELECT
        unit_id,
        arm,
        CAST(COUNT(*) AS DOUBLE) AS impressions,
        CAST(SUM(is_tail) AS DOUBLE) AS tail_impressions,
        CAST(SUM(CAST(clicked AS INTEGER)) AS DOUBLE) AS clicks,
        CAST(SUM(CASE WHEN clicked THEN is_tail ELSE 0 END) AS DOUBLE) AS tail_clicks,
        SUM(novelty) AS novelty_sum
    FROM imp
    GROUP BY unit_id, arm
) u
JOIN entropy e ON e.unit_id = u.unit_id;

CREATE OR REPLACE TEMP TABLE long_tail_arms AS
WITH exposure AS (
    SELECT s.arm, i.item_id, CAST(COUNT(*) AS DOUBLE) AS n
    FROM impressions i
    JOIN sessions s ON s.session_id = i.session_id
    WHERE s.arm IS NOT NULL
    GROUP BY s.arm, i.item_id
),
arms AS (SELECT DISTINCT arm FROM exposure),
full_exposure AS (
    -- every catalog item in every arm, with zero exposure where it was never shown
    SELECT a.arm, it.item_id, COALESCE(e.n, 0) AS n
    FROM arms a
    CROSS JOIN items it
    LEFT JOIN exposure e ON e.arm = a.arm AND e.item_id = it.item_id
),
ordered AS (
    SELECT arm, n, ROW_NUMBER() OVER (PARTITION BY arm ORDER BY n, item_id) AS r, COUNT(*) OVER (PARTITION BY arm) AS m
    FROM full_exposure
)
SELECT
    arm,
    CAST(SUM(CASE WHEN n > 0 THEN 1 ELSE 0 END) AS DOUBLE) / CAST(MAX(m) AS DOUBLE) AS coverage,
    -- Gini of exposure over the catalog: sum((2r - m - 1) n) / (m sum(n)), r ascending
    SUM((2 * r - m - 1) * n) / NULLIF(CAST(MAX(m) AS DOUBLE) * SUM(n), 0) AS exposure_gini
FROM ordered
GROUP BY arm;
