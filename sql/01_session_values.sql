-- Stage 1: one row per session with its page-level counts (the only pass over impressions).
-- Parameters: the table names $sessions, $impressions, $relevance_labels, $page_labels.
-- Portable SQL: explicit casts, no engine-specific functions, booleans cast before summing.
SELECT
    s.session_id,
    s.unit_id,
    s.arm,
    CAST(s.ts AS DATE) AS day,
    s.query_segment,
    s.query_complexity,
    CASE WHEN s.is_new_user THEN 'new' ELSE 'returning' END AS user_type,
    CAST(COALESCE(i.impressions, 0) AS BIGINT) AS impressions,
    CAST(COALESCE(i.clicks, 0) AS BIGINT) AS clicks,
    CAST(COALESCE(i.purchases, 0) AS BIGINT) AS purchases,
    CAST(COALESCE(i.orders, 0) AS BIGINT) AS orders,
    CAST(COALESCE(i.revenue, 0) AS DOUBLE) AS revenue,
    CAST(COALESCE(i.judged_impressions, 0) AS BIGINT) AS judged_impressions,
    CAST(COALESCE(i.grade_sum, 0) AS BIGINT) AS grade_sum,
    CAST(CASE WHEN p.session_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS judged_pages,
    CAST(CASE WHEN p.good THEN 1 ELSE 0 END AS BIGINT) AS good_pages
FROM $sessions s
LEFT JOIN (
    SELECT
        i.session_id,
        COUNT(*) AS impressions,
        SUM(CAST(i.clicked AS BIGINT)) AS clicks,
        SUM(CAST(i.purchased AS BIGINT)) AS purchases,
        SUM(CAST(i.orders AS BIGINT)) AS orders,
        SUM(i.revenue) AS revenue,
        COUNT(l.grade) AS judged_impressions,
        SUM(CAST(l.grade AS BIGINT)) AS grade_sum
    FROM $impressions i
    JOIN $sessions sq ON sq.session_id = i.session_id
    LEFT JOIN $relevance_labels l ON l.query = sq.query AND l.item_id = i.item_id
    GROUP BY i.session_id
) i ON i.session_id = s.session_id
LEFT JOIN $page_labels p ON p.session_id = s.session_id
