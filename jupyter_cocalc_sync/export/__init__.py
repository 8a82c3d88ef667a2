"""Export of a notebook's live state with nbconvert, and the tools some formats need."""
