"""Metrics: definitions (one per file) and the SQL engine that turns event logs into sufficient statistics."""

from abplatform.metrics.base import Metric, MetricType
from abplatform.metrics.buyer_conversion import BUYER_CONVERSION
from abplatform.metrics.item_ctr import ITEM_CTR
from abplatform.metrics.order_volume import ORDER_VOLUME
from abplatform.metrics.page_good_rate import PAGE_GOOD_RATE
from abplatform.metrics.relevance import RELEVANCE

BUILTIN_METRICS: dict[str, Metric] = {
    m.name: m for m in (ITEM_CTR, BUYER_CONVERSION, ORDER_VOLUME, PAGE_GOOD_RATE, RELEVANCE)
}

__all__ = ["BUILTIN_METRICS", "Metric", "MetricType"]
