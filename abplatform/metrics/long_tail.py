"""Long-tail and information-bubble metrics (``sql/04_long_tail.sql``).

Per-user metrics, analysed with the same statistics as the scorecard (user-level, delta method
for ratios): share of impressions and of clicks on tail items (the bottom 80% of the catalog by
pre-period impressions), novelty (mean -log2 pre-period popularity share of the items shown) and
category diversity (entropy, in bits, of the categories of the items a user was shown). Per arm,
without a CI (they are not per-user quantities): catalog coverage (share of items shown at least
once) and the Gini coefficient of exposure over the catalog.
"""

from __future__ import annotations

from abplatform.metrics.base import Metric

TAIL_IMPRESSION_SHARE = Metric("tail_impression_share", "ratio", "tail_impressions", "impressions",
                               "Share of impressions on tail items.")
TAIL_CLICK_SHARE = Metric("tail_click_share", "ratio", "tail_clicks", "clicks", "Share of clicks on tail items.")
NOVELTY = Metric("novelty", "ratio", "novelty_sum", "impressions",
                 "Mean -log2 pre-period popularity share of the items shown.")
CATEGORY_ENTROPY = Metric("category_entropy", "mean", "category_entropy",
                          description="Entropy (bits) of the categories a user was shown.")
LONG_TAIL_METRICS = (TAIL_IMPRESSION_SHARE, TAIL_CLICK_SHARE, NOVELTY, CATEGORY_ENTROPY)
HEAD_SHARE = 0.2
