"""Notebook actions (insert, split, merge, move, run …), each one commit, and calling them by
name with JSON parameters."""
