"""Profiling backends (template, hf, openai)."""
