"""The `mmhcl` section of params.yaml: MMHCL's model, item modalities and training keys.

`MMHCLConfig` (the network, loss and graph hyperparameters), the per-dataset `PRESETS` and the
loop's `TRAIN_DEFAULTS` live here, not in mmhcl.py, so that `recpipe params` validates the
section without importing torch. Resolution order of the model keys: MMHCLConfig's defaults
(the reference parser's, its TikTok setting), then `preset`, then `model`.

The item hypergraph is built from `modalities`, a list, never from the dataset's name (the
reference's NameError on Beauty and Toys, hellm.md 3.7): see recpipe/hypergraph/features.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from recpipe.config import ParamError, choice, rng


@dataclass
class MMHCLConfig:
    """Defaults are the reference parser's (`utility/parser.py`, its TikTok setting, hellm.md
    3.5); the datasets HeLLM used override them through `PRESETS`."""

    # embedding size d of all four tables (reference embed_size 64)
    dim: int = field(default=64, metadata=rng(1))
    # LightGCN layers L on the user-item graph, mean over layers 0..L (reference UI_layers)
    ui_layers: int = field(default=2, metadata=rng(0))
    # user hypergraph propagations L_u, last layer kept (reference User_layers)
    u_layers: int = field(default=3, metadata=rng(0))
    # item hypergraph propagations L_i, last layer kept (reference Item_layers)
    i_layers: int = field(default=2, metadata=rng(0))
    # λ_u, weight of the user InfoNCE; 0 skips the user hypergraph branch (user_loss_ratio)
    lambda_u: float = field(default=0.03, metadata=rng(0.0))
    # λ_i, weight of the item InfoNCE; 0 skips the item hypergraph branch (item_loss_ratio)
    lambda_i: float = field(default=0.07, metadata=rng(0.0))
    # k of the per-modality cosine kNN (self included) that makes the item hyperedges;
    # at most n_items (checked when the data is loaded)
    topk: int = field(default=5, metadata=rng(1))
    # InfoNCE temperature τ (reference temperature)
    tau: float = field(default=0.6, metadata=rng(0.0, None, lo_open=True))
    # weight of the L2 term on the fused batch embeddings, divided by the batch size (regs)
    regs: float = field(default=1e-3, metadata=rng(0.0))
    # InfoNCE negatives: all (every node of the side, the reference) | batch (the batch's
    # users and items only: O(B²) instead of O(N²) a step, hellm.md section 7 quirk 10)
    infonce: str = field(default="all", metadata=choice("all", "batch"))
    # rows per InfoNCE chunk (memory O(chunk x N); no effect on the value); 0 = ~2 MB blocks
    # on a CPU (cache-sized: the fastest there), one block on a GPU
    infonce_chunk: int = field(default=0, metadata=rng(0))
    # kNN entries: clean (every kept neighbour 1) | reference (kept cosines > 0 -> 1, kept
    # non-positive cosines stay as they are; recpipe.hypergraph.build)
    binarize: str = field(default="clean", metadata=choice("clean", "reference"))
    # exported tables: fused (u, i, what the scorer uses: the project rule, hellm.md 3.6) |
    # ui (the LightGCN part u_ui, i_ui) | ego (the layer-0 tables E_ui_user, E_ui_item)
    export: str = field(default="fused", metadata=choice("fused", "ui", "ego"))


# Settings of HeLLM's stage-1 embeddings, read from the HeLLM pretraining logs (hellm.md 3.5);
# all with lr 1e-4, batch 1024, d 64, UI_layers 2 (TRAIN_DEFAULTS).
PRESETS = {
    "beauty": {"u_layers": 2, "i_layers": 1, "lambda_u": 0.9, "lambda_i": 0.1, "topk": 10,
               "tau": 0.5, "regs": 1e-4},
    "sports": {"u_layers": 2, "i_layers": 2, "lambda_u": 0.7, "lambda_i": 0.1, "topk": 5,
               "tau": 0.5, "regs": 1e-3},
    "toys": {"u_layers": 3, "i_layers": 2, "lambda_u": 0.03, "lambda_i": 0.07, "topk": 10,
             "tau": 0.3, "regs": 1e-3},
}

# recpipe.train.loop.TrainConfig overrides for the reference recipe (hellm.md 3.4). The loop
# validates after epochs 0, 5, 10, ... (the reference: 4, 9, 14, ...), keeps a state when
# validation R@20 or N@20 beats its best (the reference's rule) and stops at `patience` bad
# validations in a row (the reference stops at the 6th: patience 6 here).
TRAIN_DEFAULTS = {"lr": 1e-4, "batch_size": 1024, "epochs": 1000, "eval_every": 5,
                  "patience": 6, "select_metric": "recall@20|ndcg@20"}

# item feature modalities (recpipe/hypergraph/features.py): text = the embed stage's
# item_text.npy; attributes = multi-hot of items.parquet's extra.attributes (S3Rec data);
# image = precomputed features (.npy, row = iid); auto = every one of them the data has
MODALITIES = ("text", "attributes", "image", "auto")


@dataclass
class MMHCLParams:
    # per-dataset hyperparameters of HeLLM's stage 1 (PRESETS): "" (the reference parser's
    # defaults) | beauty | sports | toys; keys in `model` override the preset's
    preset: str = field(default="", metadata=choice("", *PRESETS))
    # MMHCLConfig keys on top of the preset, e.g. {infonce: batch, topk: 5}; null = unset
    model: dict = field(default_factory=dict)
    # item modalities, one kNN hyperedge family each: text | attributes | image, e.g. [image,
    # text] (the paper on Amazon) or [attributes] (the s3rec_seq files: no text, no images);
    # [auto] = every one the data has (recpipe/hypergraph/features.py), recorded in the metrics
    modalities: list[str] = field(default_factory=lambda: ["auto"], metadata=choice(*MODALITIES))
    # features of modality `image`: a .npy (n_items, dim), row = iid; "" = the embed stage's
    # <embeddings>/item_image.npy (written when embed.image_features is set)
    image_path: str = ""
    # auto (cuda when present) | cpu | cuda | cuda:N | mps (checked at parse: recpipe.train.device)
    device: str = "auto"
    # CPU threads for torch; 0 = torch's default (1 can be far faster on a busy machine)
    threads: int = field(default=0, metadata=rng(0))
    # several seeds in one run: [2023, 2024, 2025] -> mean and _std in the metrics;
    # [] = the top-level `seed` (recpipe/eval/seeds.py; MMHCL's reference seed is 2024)
    seeds: list = field(default_factory=list)
    # the training loop's keys (recpipe.train.loop.TrainConfig) over TRAIN_DEFAULTS
    train: dict = field(default_factory=dict)

    def validate(self) -> None:
        from recpipe.train.device import check_device

        check_device(self.device, "mmhcl.device")
        if not self.modalities:
            raise ParamError(f"mmhcl.modalities: empty; the item hypergraph needs at least one of "
                             f"{', '.join(MODALITIES)} (e.g. [text] or, for S3Rec data, [attributes])")
        if len(set(self.modalities)) != len(self.modalities):
            raise ParamError(f"mmhcl.modalities: {self.modalities} lists a modality twice")
        # resolved keys (preset and overrides applied) go to hparams.json; parsing them again
        # gives the same config, so validate() is idempotent
        self.model = asdict(self.model_config())
        self.train = asdict(self.train_config())

    def model_config(self) -> MMHCLConfig:
        """MMHCLConfig: defaults, then PRESETS[preset], then `model`; errors name
        mmhcl.model.<key>."""
        from recpipe.config import parse

        known = [f.name for f in fields(MMHCLConfig)]
        for key in self.model:
            if key not in known:
                hint = ("; the modality list is mmhcl.modalities" if key == "modalities" else "")
                raise ParamError(f"mmhcl.model.{key}: unknown key{hint}; known keys: "
                                 f"{', '.join(known)}")
        # null = not set here: the preset's value, else MMHCLConfig's default (params.yaml
        # lists every key as null so that `dvc exp run -S mmhcl.model.<key>=...` can set it)
        given = {k: v for k, v in self.model.items() if v is not None}
        return parse(MMHCLConfig, {**PRESETS.get(self.preset, {}), **given}, prefix="mmhcl.model")

    def train_config(self):
        from recpipe.train.loop import train_config

        return train_config(self.train, TRAIN_DEFAULTS, "mmhcl.train")
