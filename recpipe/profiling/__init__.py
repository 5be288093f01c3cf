"""LLM profiling (RLMRec recipe): prompts, backends (template, hf, openai), resumable cache."""
