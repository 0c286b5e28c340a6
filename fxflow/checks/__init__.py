"""Checks: equivalence of stage modules with a reference, and the recipe's expectations."""
