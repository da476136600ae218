"""Query-item relevance: mean manual grade (0-3) of judged impressions, a ratio over users."""

from abplatform.metrics.base import Metric

RELEVANCE = Metric("relevance", "ratio", "grade_sum", "judged_impressions",
                   "Mean relevance grade of shown items that carry a manual (query, item) label.")
