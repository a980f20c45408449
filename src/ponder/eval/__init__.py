"""Evaluation: a resumable sample bank, strategy x budget replay, statistics and reports."""
