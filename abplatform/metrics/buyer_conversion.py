"""Buyer conversion: the share of users with at least one purchase (a proportion per user)."""

from abplatform.metrics.base import Metric

BUYER_CONVERSION = Metric("buyer_conversion", "proportion", "CASE WHEN purchases > 0 THEN 1 ELSE 0 END",
                          description="Share of users who bought at least once.")
