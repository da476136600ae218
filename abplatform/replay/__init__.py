"""Replay: logged sessions re-ranked by each arm's ranker and answered by simulated users."""

from abplatform.replay.run import LocalExecutor, ReplayArm, ReplayResult, ReplaySpec, replay

__all__ = ["LocalExecutor", "ReplayArm", "ReplayResult", "ReplaySpec", "replay"]
