"""The one training core every model stage uses (issue 13), built up piece by piece.

- device.py   the `device` param: checked at parse time, `auto` resolved once
- seeds.py    the run's seed: one source (the top-level `seed`), one function seeding everything
- sampler.py  vectorised, seeded negative sampling (uniform, popularity, within item sets)

No torch at import time: stages import these while parsing params.
"""
