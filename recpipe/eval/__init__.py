"""One evaluator for every method: masking, full ranking, metrics, presets, significance.

A method hands over a scorer (`EmbeddingScorer` for user/item embeddings, or any callable
scoring a batch of users against all items); `evaluate` does the rest, so a metric means the
same thing for every method. Formulas and presets: ../shared/methods/evaluation.md.
"""
