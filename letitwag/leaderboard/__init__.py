"""Leaderboard: verify submissions by recomputing metrics, and render a static site."""
