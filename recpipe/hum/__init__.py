"""HUM (hum.md): one LoRA-tuned causal LM encodes cross-domain user histories and item titles
into the hidden state of a compression token; domain-importance weights balance the domains.

    params.py   the `hum` section of params.yaml
    data.py     texts -> token ids: the prompt, title pieces, user and item sequences; samples
    domains.py  domain-importance weights (the robustness enhancer) and their update
    model.py    the HUM module: encode at <|emb|>, sampled-softmax loss, domain weighting
    run.py      build, batches, the scorer (cached item vectors), train and evaluate one run
"""
