"""The typed report of a run and its renderings."""

from abplatform.report.model import Report, ReportFormatError

__all__ = ["Report", "ReportFormatError"]
