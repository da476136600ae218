"""Offline evaluation: click models fitted on logs, off-policy estimators, interleaving, replay."""
