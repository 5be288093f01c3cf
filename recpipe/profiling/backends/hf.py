"""The `hf` backend: a local Hugging Face causal LM generates the profiles.

`model` is a Hugging Face id or local path (loaded with AutoTokenizer /
AutoModelForCausalLM; offline machines need it in the local cache or on disk), or one of
`tiny-gpt2`, `tiny-llama`, `tiny-qwen2`: randomly initialised two-layer models built from a
config with a byte-level tokenizer trained in-process, so tests and offline runs exercise the
whole path without a download. Tiny models write nonsense; the runner records it as failed,
with its raw text.

Generation is batched with left padding (prompts sorted by length so a batch pads little),
uses the tokenizer's chat template when it has one ([system, user] like RLMRec's chat call),
and is greedy at `temperature: 0` or sampled with a seed of `seed` + attempt + batch number.
Greedy retries would repeat the same answer, so retries sample at `retry_temperature`.
The model is loaded on the first generate() call: a rerun whose profiles are all cached never
loads it.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from recpipe.profiling.base import Request, Response

VERSION = "1"  # bump when the plain (no chat template) prompt format or decoding changes
TINY = ("tiny-gpt2", "tiny-llama", "tiny-qwen2")
_PLAIN = "{system}\n\n{prompt}\n\nJSON answer:\n"


class HFBackend:
    name = "hf"

    def __init__(self, model: str = "tiny-qwen2", device: str = "auto", dtype: str = "auto",
                 batch_size: int = 8, max_new_tokens: int = 384, temperature: float = 0.0,
                 retry_temperature: float = 0.7, seed: int = 0):
        self.model = model
        self.device, self.dtype = device, dtype
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.retry_temperature = temperature, retry_temperature
        self.seed = seed
        self._lm = self._tok = None
        self.calls = 0  # generate() batches run: lets tests and logs see cache hits

    def signature(self) -> dict:
        """Model + decoding settings; device, dtype and batch size are left out on purpose."""
        sig = {"backend": "hf", "version": VERSION, "model": self.model,
               "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
               "retry_temperature": self.retry_temperature}
        if self.temperature > 0 or self.retry_temperature > 0 or self.model in TINY:
            sig["seed"] = self.seed  # sampling seed, and the tiny models' initial weights
        return sig

    # -- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        import torch

        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        if self.model in TINY:
            lm, tok = build_tiny(self.model, self.seed)
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.model)
            lm = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype)
        lm.to(device=torch.device(device), dtype=dtype).eval()
        tok.padding_side = "left"
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise ValueError(f"{self.model}: tokenizer has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        eos = lm.generation_config.eos_token_id
        eos = tok.eos_token_id if eos is None else eos
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._lm, self._tok, self._device = lm, tok, device
        cfg = lm.config
        pos = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        self._context = int(pos) if pos else None

    def render(self, req: Request) -> str:
        """The text the model reads: chat template when the tokenizer has one, else plain."""
        tok = self._tok
        if getattr(tok, "chat_template", None):
            msgs = [{"role": "system", "content": req.system},
                    {"role": "user", "content": req.prompt}]
            try:
                return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            except Exception:  # some templates (e.g. Gemma) reject a system turn: merge it
                merged = [{"role": "user", "content": f"{req.system}\n\n{req.prompt}"}]
                return tok.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
        return _PLAIN.format(system=req.system, prompt=req.prompt)

    # -- generation -------------------------------------------------------------------------
    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        if self._lm is None:
            self._load()
        chat = bool(getattr(self._tok, "chat_template", None))
        todo = []
        for req in requests:
            text = self.render(req)
            # a chat template already wrote the special tokens (BOS etc.); do not add twice
            ids = self._tok(text, add_special_tokens=not chat)["input_ids"]
            limit = (self._context or 10**9) - self.max_new_tokens
            if len(ids) > limit:
                yield Response(req.key, None, error=f"prompt has {len(ids)} tokens; {self.model} "
                               f"fits {limit} before {self.max_new_tokens} new tokens",
                               prompt_tokens=0, completion_tokens=0)
                continue
            todo.append((len(ids), req.attempt, req.key, ids))
        todo.sort(key=lambda t: (t[1], t[0], t[2]))  # same attempt together, similar lengths
        for b, start in enumerate(range(0, len(todo), self.batch_size)):
            yield from self._batch(todo[start:start + self.batch_size], b)

    def _batch(self, batch: list, number: int) -> Iterator[Response]:
        import torch

        tok, lm = self._tok, self._lm
        enc = tok.pad({"input_ids": [ids for *_, ids in batch]}, return_tensors="pt")
        enc = {k: v.to(lm.device) for k, v in enc.items()}
        attempt = max(t[1] for t in batch)
        temp = self.temperature or (self.retry_temperature if attempt > 0 else 0.0)
        kwargs = dict(max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id,
                      eos_token_id=sorted(self._eos) or None, do_sample=temp > 0)
        if temp > 0:
            kwargs["temperature"] = temp
            torch.manual_seed(self.seed + 1_000_003 * attempt + number)
        with torch.inference_mode():
            out = lm.generate(**enc, **kwargs)
        self.calls += 1
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        for (n_prompt, _, key, _), row in zip(batch, new):
            n = next((i + 1 for i, t in enumerate(row) if t in self._eos), len(row))
            text = tok.decode(row[:n], skip_special_tokens=True)
            yield Response(key, text, prompt_tokens=n_prompt, completion_tokens=n)


def resolve_device(device: str) -> str:
    """profile.device, checked (a GPU torch cannot see is a ParamError) and `auto` resolved."""
    from recpipe.train.device import check_device, pick_device

    check_device(device, "profile.device")
    return pick_device(device)


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        gpu_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


# -- tiny random models ------------------------------------------------------------------------
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


def build_tiny(name: str, seed: int):
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
        model = AutoModelForCausalLM.from_config(cfg)
    return model, tok
