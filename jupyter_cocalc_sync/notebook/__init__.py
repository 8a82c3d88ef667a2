"""Notebook documents: the record schema, ipynb import/export, live documents."""
