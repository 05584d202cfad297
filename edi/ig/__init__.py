"""Implementation-guide validation of our own (005010X222A1), on edi837's reader: see validator.py."""
