"""Outputs: truncation and "more output", stream coalescing, display updates, the blob store."""
