"""A notebook's history as jupyter-collaboration's timeline and forks: copies of its YNotebook
that show a version (the status bar's slider) or take edits of their own until merged."""
