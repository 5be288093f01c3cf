"""HeLLM (hellm.md sections 5-6): a LoRA-tuned causal LM over MMHCL and SASRec item exports.

    data.py     the Alpaca prompt, training samples (HeLLM's max_len window), eval histories
    prefix.py   the graph-enhanced prefix (Gram-matrix MLPs) and the key/value cache it rides in
    model.py    the HeLLM module: soft tokens, prefix, frozen backbone + LoRA, item head
    params.py   the `hellm` section of params.yaml
    run.py      build, train (recpipe.train.loop.fit) and evaluate one run
"""
