"""The notebook file and its records: ipynb import/export, repairs, the record schema, trust,
the three-way merge (no server, no open document)."""
