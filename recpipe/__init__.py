"""recpipe: LLM-enhanced recommendation as a DVC pipeline, from raw public data to metrics."""

__version__ = "0.1.0"
