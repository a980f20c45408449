"""Scorers judge a whole answer (outcome) or the last step of a partial solution (process)."""

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer, build_scorer

__all__ = ["SCORERS", "Attempt", "ScoreBatch", "Scorer", "build_scorer"]
