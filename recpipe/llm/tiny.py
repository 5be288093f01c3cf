"""tiny-gpt2 | tiny-llama | tiny-qwen2: two-layer random models for plumbing tests.

Built from a config with a byte-level BPE tokenizer trained in-process, so tests and offline
runs exercise the whole LLM path without a download. Weights are seeded; the text they write
is nonsense. GPT-2 has no chat template (the plain prompt path); the other two have a minimal
one (the chat path).
"""

from __future__ import annotations

NAMES = ("tiny-gpt2", "tiny-llama", "tiny-qwen2")

# A fixed training text for the tiny tokenizer: English, JSON punctuation and the prompts' own
# words, so merges exist for common pieces; every byte is in the base alphabet regardless.
_CORPUS = [
    '{"summarization": "Users who enjoy fantasy novels", "reasoning": "The reviews say so."}',
    "BASIC INFORMATION: title, brand, categories, description. USER FEEDBACK: review.",
    "PURCHASED ITEMS PLAYED GAMES PURCHASED BUSINESSES: the user liked this product a lot.",
    "You help a recommender system describe products, businesses and games in JSON.",
]
_CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def tiny_tokenizer(chat: bool):
    """Byte-level BPE (vocab ~400) trained in-process: deterministic, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|pad|>", "<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|eos|>")
    if chat:
        tok.chat_template = _CHAT
    return tok


def build_tiny(name: str, seed: int, attn: str = "sdpa"):
    """(model, tokenizer) for a tiny-* name: 2 layers, width 64, weights seeded by `seed`."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

    tok = tiny_tokenizer(chat=name != "tiny-gpt2")
    ids = dict(vocab_size=len(tok), bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    if name == "tiny-gpt2":
        cfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=4096, **ids)
    else:
        cls = LlamaConfig if name == "tiny-llama" else Qwen2Config
        cfg = cls(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                  tie_word_embeddings=True, **ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn)
    return model, tok
