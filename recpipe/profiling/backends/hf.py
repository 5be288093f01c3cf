"""The `hf` backend: a local Hugging Face causal LM generates the profiles.

`model` is anything recpipe.llm.backbone loads: `smollm2-135m` (the real SmolLM2-135M-Instruct,
offline), a Hugging Face id or local folder, or `tiny-gpt2` | `tiny-llama` | `tiny-qwen2`
(random two-layer models for tests: they write nonsense, which the runner records as failed,
with its raw text).

Generation is batched with left padding (prompts sorted by length so a batch pads little),
uses the tokenizer's chat template when it has one ([system, user] like RLMRec's chat call),
and is greedy at `temperature: 0` or sampled with a seed of `seed` + attempt + batch number.
Greedy retries would repeat the same answer, so retries sample at `retry_temperature`.
The model is loaded on the first generate() call: a rerun whose profiles are all cached never
loads it.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from recpipe.llm.tiny import NAMES as TINY
from recpipe.profiling.base import Request, Response

VERSION = "1"  # bump when the plain (no chat template) prompt format or decoding changes
_PLAIN = "{system}\n\n{prompt}\n\nJSON answer:\n"


class HFBackend:
    name = "hf"

    def __init__(self, model: str = "smollm2-135m", device: str = "auto", dtype: str = "auto",
                 batch_size: int = 8, max_new_tokens: int = 384, temperature: float = 0.0,
                 retry_temperature: float = 0.7, seed: int = 0, guided: bool = False,
                 repetition_penalty: float = 1.0):
        self.model = model
        self.device, self.dtype = device, dtype
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.temperature, self.retry_temperature = temperature, retry_temperature
        self.seed = seed
        self.guided, self.repetition_penalty = guided, repetition_penalty
        self._lm = self._tok = self._quotes = None
        self.calls = 0  # generate() batches run: lets tests and logs see cache hits

    def signature(self) -> dict:
        """Model + decoding settings; device, dtype and batch size are left out on purpose."""
        sig = {"backend": "hf", "version": VERSION, "model": self.model,
               "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
               "retry_temperature": self.retry_temperature}
        if self.guided:  # a different answer; unguided keys stay as they were
            sig["guided"] = True
        if self.repetition_penalty != 1.0:
            sig["repetition_penalty"] = self.repetition_penalty
        if self.temperature > 0 or self.retry_temperature > 0 or self.model in TINY:
            sig["seed"] = self.seed  # sampling seed, and the tiny models' initial weights
        return sig

    # -- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        from recpipe.llm.backbone import load_backbone

        lm, tok = load_backbone(self.model, device=self.device, dtype=self.dtype, seed=self.seed,
                                key="profile")
        tok.padding_side = "left"
        eos = lm.generation_config.eos_token_id
        eos = tok.eos_token_id if eos is None else eos
        self._eos = set(eos if isinstance(eos, list) else [eos]) - {None}
        self._lm, self._tok = lm, tok
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

        attempt = max(t[1] for t in batch)
        temp = self.temperature or (self.retry_temperature if attempt > 0 else 0.0)
        if temp > 0:
            torch.manual_seed(self.seed + 1_000_003 * attempt + number)
        prompts = [ids for *_, ids in batch]
        if not self.guided:
            rows = self._run(prompts, self.max_new_tokens, temp)
            texts = [self._tok.decode(r, skip_special_tokens=True) for r in rows]
            counts = [len(r) for r in rows]
        else:
            texts, counts = self._guided(prompts, temp)
        self.calls += 1
        for (n_prompt, _, key, _), text, n in zip(batch, texts, counts):
            yield Response(key, text, prompt_tokens=n_prompt, completion_tokens=n)

    def _guided(self, prompts: list[list[int]], temp: float) -> tuple[list[str], list[int]]:
        """One generate() that fills RLMRec's JSON skeleton (see guided.py)."""
        from recpipe.profiling.backends.guided import HEAD, SEP, GuidedJSON, answer

        tok = self._tok
        enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        head = enc(HEAD)
        width = max(len(p) for p in prompts) + len(head)  # left padding aligns the prompt ends
        steer = GuidedJSON(self._quote_ids(), enc(SEP), enc('"' + SEP), sorted(self._eos),
                           width, self.max_new_tokens)
        rows = self._run([p + head for p in prompts], self.max_new_tokens, temp, steer)
        texts = [answer(tok.decode(r, skip_special_tokens=True)) for r in rows]
        return texts, [len(r) for r in rows]

    def _run(self, prompts: list[list[int]], max_new: int, temp: float,
             steer=None) -> list[list[int]]:
        """One batched, left-padded generate(); each row's new tokens up to its first eos."""
        import torch
        from transformers import LogitsProcessorList

        tok, lm = self._tok, self._lm
        enc = tok.pad({"input_ids": prompts}, return_tensors="pt")
        enc = {k: v.to(lm.device) for k, v in enc.items()}
        kwargs = dict(max_new_tokens=max_new, pad_token_id=tok.pad_token_id,
                      eos_token_id=sorted(self._eos) or None, do_sample=temp > 0)
        if temp > 0:
            kwargs["temperature"] = temp
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        if steer is not None:
            kwargs["logits_processor"] = LogitsProcessorList([steer])
        with torch.inference_mode():
            out = lm.generate(**enc, **kwargs)
        rows = out[:, enc["input_ids"].shape[1]:].tolist()
        return [row[:next((i + 1 for i, t in enumerate(row) if t in self._eos), len(row))]
                for row in rows]

    def _quote_ids(self) -> set[int]:
        """Every vocabulary entry whose text holds a double quote (`"`, `."`, `",` ...): the
        tokens that end a guided string (found once, so no step decodes text)."""
        if self._quotes is None:
            tok = self._tok
            pieces = tok.batch_decode([[i] for i in range(len(tok))])
            self._quotes = {i for i, t in enumerate(pieces) if '"' in t}
        return self._quotes
