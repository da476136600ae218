"""Page good rate: good pages / judged pages over users (ratio; units with no judged page add 0 / 0)."""

from abplatform.metrics.base import Metric

PAGE_GOOD_RATE = Metric("page_good_rate", "ratio", "good_pages", "judged_pages",
                        "Share of manually judged result pages rated good.")
