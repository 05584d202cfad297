"""Pump-coding rules: the data in ``rules/``, the rule kinds, the engine and the findings."""
