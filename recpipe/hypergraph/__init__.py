"""MMHCL, the hypergraph contrastive CF stage of HeLLM (hellm.md section 3).

- `build.py`: the user-user and item-item hypergraphs, sparse (scipy), never a dense n x n;
- `infonce.py`: the GRACE-style InfoNCE over all nodes, in row chunks, and its in-batch variant;
- `params.py`: `MMHCLParams` (the params.yaml section), `MMHCLConfig`, the dataset `PRESETS`
  and the loop's `TRAIN_DEFAULTS`, torch-free;
- `features.py`: the item modality matrices (text, attributes, image), chosen by a list;
- `mmhcl.py`: the `MMHCL` model and its `lr_lambda`;
- `run.py`: one run: graphs from the training matrix, training, valid/test at the kept state.

The batch source is `recpipe.train.sampler.UserBatches`; training runs `recpipe.train.loop.fit`.
"""
