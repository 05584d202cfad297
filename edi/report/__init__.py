"""Report values and formats (JSON contract, text for people)."""
