"""Open documents: the notebook document, opening and closing notebooks, following their files
(autosave, out-of-band changes), and plain-file documents."""
