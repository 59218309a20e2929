"""Any RecBole model by name, trained on the clicks logged so far.

``recommender: {type: recbole, model: SASRec, params: {...}}``. At every retrain the adapter
writes the click log as RecBole atomic files in a temporary directory and trains from scratch
in memory. Each page batch is served by ONE batched ``full_sort_predict``: sequential models
get each user's most recent clicks (kept up to date after every batch through ``update``, so a
click made a minute ago already shapes the next page); general models get the user id.
Users the model cannot serve (no history, or unknown at the last training) and items published
after it fall back to popularity.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.popularity import PopularityParams, PopularityRecommender
from recarena.recommenders.recbole_support import import_recbole, scratch_cwd
from recarena.recommenders.slates import top_k_over_fallback
from recarena.simulator.core.types import (
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)

DATASET = "recarena"


OWN_CONFIG = {
    "epochs": "epochs",
    "train_batch_size": "train_batch_size",
    "MAX_ITEM_LIST_LENGTH": "max_seq_len",
    "seed": None,
    "reproducibility": None,
    "data_path": None,
    "checkpoint_dir": None,
    "load_col": None,
    "eval_args": None,
    "device": None,
    "use_gpu": None,
    "gpu_id": None,
    "show_progress": None,
    "state": None,
}
"""RecBole config keys the adapter sets itself (``RecBoleRecommender._config``), each with the
param of ours that sets it, if any. Written in ``params`` they overrode ours unchecked:
``epochs: 100000`` past the bound of ``epochs``, a batch size of 0, a data path of another
dataset, a device this machine lacks; validate passed them and every cell failed or ran on."""


class RecBoleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "SASRec"
    epochs: int = Field(default=1, ge=1, le=1000)
    max_seq_len: int = Field(default=50, ge=1, le=1000)
    train_batch_size: int = Field(default=2048, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    """Passed to RecBole's config (e.g. hidden_size, n_layers, learning_rate)."""

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        rb = import_recbole()
        try:
            rb.get_model(name)
        except (ValueError, ImportError):  # unknown names also probe optional xgboost/lightgbm
            examples = "SASRec, GRU4Rec, BERT4Rec, BPR, LightGCN, NeuMF, ItemKNN, Pop"
            raise ValueError(f"unknown RecBole model {name!r}; e.g. {examples}") from None
        from recbole.model.abstract_recommender import AbstractRecommender

        if rb.get_model(name).full_sort_predict is AbstractRecommender.full_sort_predict:
            # every page is served from a ranking of the whole catalog: such a model passed
            # validate and failed every cell at its first page after a fit
            raise ValueError(
                f"RecBole model {name!r} cannot rank the whole catalog (it has no "
                "full_sort_predict), which every page needs"
            )
        return name

    @field_validator("params")
    @classmethod
    def _not_ours(cls, params: dict[str, Any]) -> dict[str, Any]:
        for key in params:
            if key in OWN_CONFIG:
                ours = OWN_CONFIG[key]
                how = f"set {ours} instead" if ours else "it is not a setting of the scenario"
                raise ValueError(f"{key}: recarena sets this RecBole key itself ({how})")
        return params


class RecBoleRecommender:
    Params = RecBoleParams
    surfaces = frozenset({"list", "carousel"})

    def __init__(self, params: RecBoleParams, ctx: RecommenderContext) -> None:
        self.name = f"recbole:{params.model}"
        self.params = params
        self.rng = ctx.rng
        self.rb = import_recbole()
        self.popularity = PopularityRecommender(PopularityParams(), ctx)
        self.model: Any | None = None  # the trained RecBole (torch) model; RecBole has no stubs
        self.sequential = False
        self.internal_item = np.zeros(0, np.int64)  # our item id -> RecBole id (0 = unknown)
        self.external_item = np.zeros(0, np.int64)  # RecBole id -> our item id
        self.internal_user = np.zeros(ctx.n_users, np.int64)  # our user -> RecBole id (0 = none)
        length = params.max_seq_len
        self.seq = np.zeros((ctx.n_users, length), np.int64)  # recent clicks, RecBole ids
        self.seq_len = np.zeros(ctx.n_users, np.int64)

    # -------------------------------------------------------------------- training
    def _config(self, data_dir: str, seed: int) -> dict[str, Any]:
        config = {
            "data_path": data_dir,
            "epochs": self.params.epochs,
            "seed": seed,
            "reproducibility": True,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "state": "ERROR",
            "checkpoint_dir": f"{data_dir}/saved",
            "MAX_ITEM_LIST_LENGTH": self.params.max_seq_len,
            "train_batch_size": self.params.train_batch_size,
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
            "eval_args": {
                "split": {"RS": [0.98, 0.01, 0.01]},
                "order": "TO",
                "mode": "full",
                "group_by": "user",
            },
        }
        return config | self.params.params

    def fit(self, history: Interactions) -> None:
        self.popularity.fit(history)
        if len(history) < 10:
            return
        rb = self.rb
        seed = int(self.rng.integers(2**31 - 1))
        with scratch_cwd() as tmp:
            path = f"{tmp}/{DATASET}"
            _write_atomic(path, history)
            model_class = rb.get_model(self.params.model)
            sequential = model_class.type == rb.ModelType.SEQUENTIAL
            defaults = {"train_neg_sample_args": None, "loss_type": "CE"} if sequential else {}
            config_dict = defaults | self._config(tmp, seed)
            config = rb.Config(model=self.params.model, dataset=DATASET, config_dict=config_dict)
            rb.init_seed(seed, True)
            dataset = rb.create_dataset(config)
            train, _, _ = rb.data_preparation(config, dataset)
            model = model_class(config, train.dataset)
            trainer = rb.get_trainer(config["MODEL_TYPE"], self.params.model)(config, model)
            trainer.fit(train, saved=False, show_progress=False)
            # its TensorBoard writer flushes from a background thread to a path relative to
            # the scratch directory: close it before leaving
            writer = getattr(trainer, "tensorboard", None)
            if writer is not None:
                writer.close()
        model.eval()
        self.model = model
        self.sequential = sequential
        self._index(dataset, history)

    def _index(self, dataset, history: Interactions) -> None:
        """Map ids both ways and rebuild each user's recent sequence from the whole log."""
        item_tokens = dataset.field2id_token["item_id"]
        self.external_item = np.array([-1] + [int(t) for t in item_tokens[1:]], np.int64)
        size = int(max(self.external_item.max() + 1, history.item.max() + 1))
        self.internal_item = np.zeros(size, np.int64)
        self.internal_item[self.external_item[1:]] = np.arange(1, len(item_tokens))
        user_tokens = dataset.field2id_token["user_id"]
        self.internal_user[:] = 0
        self.internal_user[np.array([int(t) for t in user_tokens[1:]], np.int64)] = np.arange(
            1, len(user_tokens)
        )
        # each user's last max_seq_len known clicks, oldest first, in one vectorised pass
        order = np.lexsort((history.time, history.user))
        user = history.user[order]
        internal = self.internal_item[history.item[order]]
        user, internal = user[internal > 0], internal[internal > 0]
        counts = np.bincount(user, minlength=self.seq.shape[0])
        ends = np.cumsum(counts)
        from_end = ends[user] - np.arange(user.size) - 1  # 0 for a user's latest click
        kept = np.minimum(counts, self.seq.shape[1])
        position = kept[user] - 1 - from_end
        use = position >= 0
        self.seq[:] = 0
        self.seq[user[use], position[use]] = internal[use]
        self.seq_len[:] = kept

    def _append(self, users: np.ndarray, items: np.ndarray) -> None:
        """Push clicks (unique users) onto the users' recent sequences (RecBole ids)."""
        known = items < self.internal_item.shape[0]
        users, items = users[known], items[known]
        internal = self.internal_item[items]
        users, internal = users[internal > 0], internal[internal > 0]
        if users.size == 0:
            return
        length = self.seq.shape[1]
        full = self.seq_len[users] >= length
        shift = users[full]
        self.seq[shift, :-1] = self.seq[shift, 1:]
        self.seq[shift, -1] = internal[full]
        grow = users[~full]
        self.seq[grow, self.seq_len[grow]] = internal[~full]
        self.seq_len[grow] += 1

    # -------------------------------------------------------------------- serving
    def recommend(self, requests: RequestBatch) -> SlateBatch:
        fallback = self.popularity.recommend(requests)
        if self.model is None:
            return fallback
        users = requests.user
        servable = self.seq_len[users] > 0 if self.sequential else self.internal_user[users] > 0
        if not servable.any():
            return fallback
        rows = np.flatnonzero(servable)
        internal_scores = self._predict(users[rows])
        n = requests.catalog.n_items
        scores = np.full((rows.size, n), -np.inf)
        known = self.external_item[1:] < n
        scores[:, self.external_item[1:][known]] = internal_scores[:, 1:][:, known]
        # a user for whom the model knows too few items keeps popularity's slate
        return top_k_over_fallback(fallback, rows, scores, requests)

    def _predict(self, users: np.ndarray) -> np.ndarray:
        import torch  # lazily: listing and validating never load torch

        model = self.model
        assert model is not None, "recommend() serves popularity until a model is trained"
        if self.sequential:
            fields = {
                model.ITEM_SEQ: torch.from_numpy(self.seq[users]),
                model.ITEM_SEQ_LEN: torch.from_numpy(self.seq_len[users]),
                model.USER_ID: torch.from_numpy(self.internal_user[users]),
            }
        else:
            fields = {model.USER_ID: torch.from_numpy(self.internal_user[users])}
        with torch.no_grad():
            scores = model.full_sort_predict(self.rb.Interaction(fields))
        return scores.reshape(len(users), -1).numpy().astype(np.float64)

    def update(self, feedback: FeedbackBatch) -> None:
        rows = np.flatnonzero(feedback.clicked.any(axis=1))
        if rows.size and self.model is not None:
            items = feedback.slates.items[rows, feedback.clicked[rows].argmax(axis=1)]
            self._append(feedback.requests.user[rows], items)


def _write_atomic(path: str, history: Interactions) -> None:
    """RecBole's atomic ``.inter`` file: one click per line, typed header."""
    os.makedirs(path, exist_ok=True)
    with open(f"{path}/{DATASET}.inter", "w", encoding="utf-8") as out:
        out.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        rows = np.column_stack([history.user, history.item]).astype(np.int64)
        lines = [
            f"{u}\t{i}\t{r:.1f}\t{t:.3f}\n"
            for (u, i), r, t in zip(
                rows.tolist(), history.rating.tolist(), history.time.tolist(), strict=True
            )
        ]
        out.writelines(lines)


TRIED_MODELS = frozenset({"SASRec", "GRU4Rec", "BERT4Rec", "BPR", "LightGCN"})
"""Models the tests train and serve with the adapter's own settings."""


def trial_problem(params: RecBoleParams) -> str | None:
    """Why these params cannot train and serve, from one epoch on 20 users' made-up clicks
    (None when they can). RecBole checks its config and the model's hyper-parameters only when
    it builds and trains: ``params`` with a hidden size heads do not divide, a loss the model
    does not take or a negative embedding size passed validate and failed every cell (exit 1).
    Models outside :data:`TRIED_MODELS` are tried with the adapter's defaults too (FPMC takes no
    CE loss, the adapter's default for sequential models)."""
    if not params.params and params.model in TRIED_MODELS:
        return None
    users, items = 20, 30
    user = np.repeat(np.arange(users, dtype=np.int64), 15)
    item = (user * 7 + np.tile(np.arange(15, dtype=np.int64), users)) % items
    time = np.arange(user.size, dtype=np.float64)
    history = Interactions(user, item, time, np.full(user.size, 4.0, np.float32))
    trial = params.model_copy(update={"epochs": 1})
    import random
    import warnings

    import torch

    # RecBole seeds the global generators: a local run's cells come after this check in the
    # same process, so they get the generators' state back as it was
    legacy = np.random.get_state()  # noqa: NPY002 - the global state RecBole reseeds
    states = random.getstate(), torch.get_rng_state()
    try:
        with warnings.catch_warnings():  # a trial's warnings are not the run's
            warnings.simplefilter("ignore")
            rec = RecBoleRecommender(trial, RecommenderContext(np.random.default_rng(0), users, 4))
            rec.fit(history)
            rec._predict(np.arange(users, dtype=np.int64))
    except Exception as exc:  # noqa: BLE001 - RecBole's and torch's errors: any failure, one line
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
    finally:
        random.setstate(states[0])
        np.random.set_state(legacy)  # noqa: NPY002 - put back as it was
        torch.set_rng_state(states[1])
    return None
