"""CLLM4Rec (Zhu et al., WWW 2024): ID-token pretraining and finetuning on a frozen causal LM."""
