"""Data: canonical schema, raw-format readers, cleaning, split protocols, the sample generator."""
