"""The one training core every trained model uses: one loop, one checkpoint format, one sampler.

- device.py   the `device` param: checked at parse time, `auto` resolved once
- seeds.py    the run's seed: one source (the top-level `seed`), one function seeding everything
- sampler.py  vectorised, seeded negative sampling (uniform, popularity, within item sets)
              and BPRBatches, the (user, positive, negative) batch source of BPR models
- checkpoint.py  single-file atomic checkpoints and the fingerprint that guards resuming
- loop.py     fit(model, data, cfg) -> FitResult: the one training loop
- backend.py  autocast, backward, step and batch transfer on one device: the accelerate seam

No torch at import time: stages import these while parsing params.
"""
