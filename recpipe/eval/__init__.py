"""One evaluator for every method: masking, full ranking, metrics, presets, significance.

A method hands over a scorer (`EmbeddingScorer` for user/item embeddings, or any callable
scoring a batch of users against all items); `evaluate` does the rest, so a metric means the
same thing for every method. Sample-level protocols (leave-one-out with several samples per
user, HUM, sampled candidates) hand `evaluate_samples` a `Samples` table instead of users.
Formulas and presets: ../shared/methods/evaluation.md.
"""
