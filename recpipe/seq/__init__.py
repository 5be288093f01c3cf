"""Sequential recommenders over recpipe.data.view.DataView sequences.

    params.py   the `sasrec` params section (SASRecParams) and the network config (SASRecConfig)
    sasrec.py   SASRec (Kang & McAuley 2018) in the E4SRec recipe; its item table is HeLLM's
                sequential feature
    batches.py  SASRec's training rows (the user's training sequence, shifted by one) for the loop
    run.py      fit + evaluate one SASRec run; the per-part scorer the evaluator reads
"""
