"""Item CTR: Σ clicks / Σ impressions over users — a ratio metric (delta method), not a binomial."""

from abplatform.metrics.base import Metric

ITEM_CTR = Metric("item_ctr", "ratio", "clicks", "impressions", "Clicks per impression (user-level ratio).")
