"""Order volume: orders per user (a per-user mean)."""

from abplatform.metrics.base import Metric

ORDER_VOLUME = Metric("order_volume", "mean", "orders", description="Orders per user.")
