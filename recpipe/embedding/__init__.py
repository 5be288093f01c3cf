"""Text (and optional image) features: sentence embeddings of profiles and item texts.

- `text.TextEncoder`: SentenceTransformer wrapper (offline default: all-MiniLM-L6-v2).
- `cache`: text-hash cache, so unchanged texts are never re-encoded.
- `images`: precomputed image features aligned to our item ids.
- `embed.embed_all`: what the `embed` stage runs.

Nothing heavy is imported here: torch loads only when a text is actually encoded.
"""
