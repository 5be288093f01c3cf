"""Guided JSON for the hf backend: the model fills the two strings of RLMRec's answer.

The prompt ends with `{"summarization": "` (the skeleton's head). A logits processor then
steers one generate() call, row by row, through three states:

    0 summarization: free text until the model emits a token holding a double quote (`"`,
      `."`, `",` ...) or uses its half of the budget; then the separator `, "reasoning": "` is forced
      token by token;
    1 reasoning: free text until the next quote-holding token (or the budget), then eos;
    2 done.

One prefill and one decode per batch: SmolLM2-135M with RLMRec's prompt wrote 0 valid answers
in 16 unguided, and 16 of 16 guided. `answer()` turns the continuation back into the JSON the
runner parses (json.dumps, so a stray backslash cannot break it).
"""

from __future__ import annotations

import json

HEAD = '{"summarization": "'
SEP = ', "reasoning": "'
KEY = '"reasoning": "'


class GuidedJSON:
    """A transformers LogitsProcessor (duck-typed: __call__(input_ids, scores) -> scores)."""

    def __init__(self, quote_ids: set[int], sep_ids: list[int], close_sep_ids: list[int],
                 eos_ids: list[int], prompt_len: int, budget: int):
        # sep follows a quote the model wrote; close_sep (`", "reasoning": "`) ends a string
        # the budget cut, so the answer always has its quotes
        self.quotes, self.sep, self.close_sep = quote_ids, sep_ids, close_sep_ids
        self.quote_list, self.eos = sorted(quote_ids), eos_ids
        # each string's share of the budget, after the separator and the final eos
        self.start, self.half = prompt_len, max(1, (budget - len(close_sep_ids) - 1) // 2)
        self.state: list[int] = []
        self.queue: list[list[int]] = []  # tokens still to force, per row
        self.count: list[int] = []  # free tokens written in the row's current string
        self.forced: list[bool] = []  # was the row's last token forced (its quote is ours)?

    def __call__(self, input_ids, scores):
        """input_ids [B, prompt + t]; scores [B, V] for step t; returns the steered scores."""
        b = input_ids.shape[0]
        if not self.state:
            self.state, self.queue = [0] * b, [[] for _ in range(b)]
            self.count, self.forced = [0] * b, [False] * b
        started = input_ids.shape[1] > self.start
        for r in range(b):
            if started and not self.forced[r] and self.state[r] < 2:
                self.count[r] += 1
                quoted = int(input_ids[r, -1]) in self.quotes
                if quoted or self.count[r] >= self.half:
                    self.queue[r] = ([self.eos[0]] if self.state[r] == 1 else
                                     list(self.sep if quoted else self.close_sep))
                    self.state[r] += 1
                    self.count[r] = 0
            self.forced[r] = bool(self.queue[r])
            if self.queue[r]:
                forced = self.queue[r].pop(0)
                scores[r] = float("-inf")
                scores[r, forced] = 0.0
            elif self.state[r] < 2:
                scores[r, self.eos] = float("-inf")  # no early eos: both strings get written
                if self.count[r] == 0:  # nor an empty string
                    scores[r, self.quote_list] = float("-inf")
        return scores


def answer(continuation: str) -> str:
    """The generated text after HEAD -> the JSON object; the raw text when the skeleton is not
    in it (the row ended early), which the runner then records as a failure with its text."""
    summ, quote, _ = continuation.partition('"')
    at = continuation.find(KEY)
    if not quote or at < 0:
        return continuation
    reason = continuation[at + len(KEY):].split('"', 1)[0]
    return json.dumps({"summarization": summ.strip(), "reasoning": reason.strip()},
                      ensure_ascii=False)
