"""Execution: the per-notebook run queue that drives a kernel and writes outputs."""
