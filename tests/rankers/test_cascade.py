"""The cascade baseline, stage by stage, on a synthetic log whose clicks follow a known logistic click model
(pages drawn uniformly from the catalog, so nothing confounds position and item), and on the shared world:
BM25 retrieval against a brute-force BM25, the pre-ranking cut against its own linear score, the ranking
model's coefficients against the click model, pre-period data only, determinism, and the pipeline."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from abplatform.contract import IMPRESSIONS, ITEMS, SESSIONS
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers import CandidateBatch, CascadeRanker, Catalog, make_ranker
from abplatform.rankers.cascade import FEATURES, ITEM_FEATURES, PRERANKING_FEATURES, query_item_features
from abplatform.replay.serving_cost import query_batches
from abplatform.report.model import Report
from tests.conftest import WORLD_YAML, world_cache

BRANDS = ("acme", "nordik", "velora", "kumo")
COLOURS = ("black", "white", "red", "blue", "green")
CATEGORIES = ("lamp", "mug", "rug", "kite")
N_ITEMS, K = 120, 10
# the known click model: logit P(click) = INTERCEPT + TRUE_COEF · features + TRUE_POSITION_EFFECT[position - 1]
INTERCEPT = -1.6
TRUE_COEF = {"title_bm25": 0.8, "brand_match": 0.7, "colour_match": 0.5, "over_price_cap": -1.2}
TRUE_POSITION_EFFECT = -0.9 * np.log(np.arange(1, K + 1))


def make_items(g: np.random.Generator) -> pa.Table:
    brand, colour, category = (g.integers(0, len(v), N_ITEMS) for v in (BRANDS, COLOURS, CATEGORIES))
    extra = g.random(N_ITEMS) < 0.4  # some longer titles, so BM25's length normalisation matters
    titles = [f"{BRANDS[b].title()} {COLOURS[c]} {CATEGORIES[k]}" + (" for outdoor use" if e else "")
              for b, c, k, e in zip(brand, colour, category, extra, strict=True)]
    return pa.table({
        "item_id": np.arange(N_ITEMS) * 3 + 5, "title": titles, "category": [CATEGORIES[k] for k in category],
        "parent_category": ["home"] * N_ITEMS, "brand": [BRANDS[b] for b in brand],
        "colour": [COLOURS[c] for c in colour], "material": ["wool"] * N_ITEMS, "style": ["outdoor"] * N_ITEMS,
        "price": np.round(g.uniform(5, 100, N_ITEMS), 2)}, schema=ITEMS.schema)


def make_queries(g: np.random.Generator, n: int) -> list[str]:
    """Category words, some with a brand or a colour, some with a price cap."""
    out = []
    for u, b, c, k, cap in zip(g.random(n), g.integers(0, len(BRANDS), n), g.integers(0, len(COLOURS), n),
                               g.integers(0, len(CATEGORIES), n), g.random(n), strict=True):
        words = [BRANDS[b]] if u < 0.35 else [COLOURS[c]] if u < 0.7 else []
        out.append(" ".join([*words, CATEGORIES[k]]) + (" under 40" if cap < 0.3 else ""))
    return out


def brute_force_bm25(query: str, titles: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 of ``query`` against every title, term by term, from the formula."""
    docs = [t.lower().split() for t in titles]
    avgdl = sum(map(len, docs)) / len(docs)
    df = Counter(t for d in docs for t in set(d))
    out = np.zeros(len(docs))
    for t in set(query.lower().split()):
        if not df[t]:
            continue
        idf = math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(t)
            out[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
    return out


def true_logits(items: pa.Table, queries: list[str], rows: np.ndarray) -> np.ndarray:
    """The known click model's logit without the position term, per (session, item row) cell."""
    titles, brand, colour = (items[c].to_pylist() for c in ("title", "brand", "colour"))
    price = items["price"].to_numpy()
    out = np.zeros(rows.shape)
    for i, q in enumerate(queries):
        words = q.split()
        bm25 = brute_force_bm25(q, titles)[rows[i]]
        named_brand = next((w for w in words if w in BRANDS), None)
        named_colour = next((w for w in words if w in COLOURS), None)
        cap = float(words[-1]) if "under" in words else math.inf
        for j, r in enumerate(rows[i]):
            match = {"title_bm25": bm25[j],
                     "brand_match": 0.0 if named_brand is None else 1.0 if brand[r] == named_brand else -1.0,
                     "colour_match": 0.0 if named_colour is None else 1.0 if colour[r] == named_colour else -1.0,
                     "over_price_cap": float(price[r] > cap)}
            out[i, j] = INTERCEPT + sum(TRUE_COEF[f] * v for f, v in match.items())
    return out


def write_click_log(path: Path, sessions: int = 12_000, seed: int = 3) -> Path:
    """A dataset of items and a pre-period whose pages are K items drawn uniformly, clicked by the known model."""
    g = np.random.default_rng(seed)
    items = make_items(g)
    queries = make_queries(g, sessions)
    rows = np.argsort(g.random((sessions, N_ITEMS)), axis=1)[:, :K]
    p = 1 / (1 + np.exp(-(true_logits(items, queries, rows) + TRUE_POSITION_EFFECT)))
    clicked = g.random(rows.shape) < p
    ids = np.arange(1, sessions + 1, dtype=np.int64) * 7  # not 0..n-1, so ids and rows cannot be confused
    ts = pa.array(np.full(sessions, np.datetime64("2026-05-01T10:00", "us")), pa.timestamp("us", tz="UTC"))
    tables = {
        "items": items,
        "pre_sessions": pa.table({"session_id": ids, "unit_id": [f"u{i % 500}" for i in range(sessions)], "ts": ts,
                                  "query": queries, "query_segment": ["head"] * sessions,
                                  "query_complexity": ["simple"] * sessions, "is_new_user": np.zeros(sessions, bool),
                                  "arm": pa.nulls(sessions, pa.string())}, schema=SESSIONS.schema),
        "pre_impressions": pa.table({
            "session_id": np.repeat(ids, K), "position": np.tile(np.arange(1, K + 1, dtype=np.int16), sessions),
            "item_id": items["item_id"].to_numpy()[rows].ravel(), "clicked": clicked.ravel(),
            "purchased": np.zeros(sessions * K, bool), "orders": np.zeros(sessions * K, np.int32),
            "revenue": np.zeros(sessions * K), "propensity": np.full(sessions * K, 1.0 / N_ITEMS),
            "team": pa.nulls(sessions * K, pa.string())}, schema=IMPRESSIONS.schema),
    }
    for name, table in tables.items():
        (path / name).mkdir(parents=True)
        pq.write_table(table, path / name / "part-00000.parquet")
    return path


@pytest.fixture(scope="module")
def click_log(tmp_path_factory) -> Path:
    return write_click_log(tmp_path_factory.mktemp("cascade") / "log")


@pytest.fixture(scope="module")
def fitted(click_log) -> tuple[CascadeRanker, Catalog]:
    ds = Dataset(click_log)
    catalog = Catalog.from_dataset(ds)
    return CascadeRanker(retrieval_size=6, preranking_size=3).fit(ds, catalog), catalog


def fresh_batch(catalog: Catalog, sessions: int = 300, candidates: int = 14, seed: int = 9) -> CandidateBatch:
    """Sessions the log never had: candidates in no particular order (ties go by candidate order), some padding."""
    g = np.random.default_rng(seed)
    rows = np.argsort(g.random((sessions, len(catalog))), axis=1)[:, :candidates]
    rows[::7, -2:] = -1
    return CandidateBatch(np.arange(sessions), make_queries(g, sessions), rows)


def top_by_column(score: np.ndarray, keep: np.ndarray, size: int) -> np.ndarray:
    """Brute force: per row, the ``size`` highest of ``keep`` (scores equal to 9 decimals tie), ties by column."""
    out = np.zeros_like(keep)
    for i in range(len(score)):
        cells = sorted((-round(float(score[i, j]), 9), j) for j in np.flatnonzero(keep[i]))
        out[i, [j for _, j in cells[:size]]] = True
    return out


def test_retrieval_keeps_the_top_r_by_bm25_of_the_title(fitted):
    ranker, catalog = fitted
    batch = fresh_batch(catalog)
    stages = ranker.stages(batch)
    valid = batch.candidate_rows >= 0
    bm25 = np.array([brute_force_bm25(q, catalog.titles)[np.maximum(r, 0)]
                     for q, r in zip(batch.queries, batch.candidate_rows, strict=True)])
    np.testing.assert_allclose(stages.title_bm25[valid], bm25[valid], rtol=1e-12)
    expected = top_by_column(bm25, valid, 6)
    assert np.array_equal(stages.retrieved, expected)
    assert (stages.retrieved.sum(axis=1) == np.minimum(valid.sum(axis=1), 6)).all()


def test_preranking_cuts_the_retrieved_to_the_top_p_by_its_linear_score(fitted, click_log):
    ranker, catalog = fitted
    batch = fresh_batch(catalog)
    stages = ranker.stages(batch)
    rows = np.maximum(batch.candidate_rows, 0)
    # its features: title BM25 (checked above) and item statistics, recomputed here from the log's rows
    log = pq.read_table(click_log / "pre_impressions")
    item_rows = catalog.rows(log["item_id"].to_numpy())
    impressions = np.bincount(item_rows, minlength=len(catalog))
    np.testing.assert_allclose(ranker.items[ITEM_FEATURES.index("item_popularity")], np.log1p(impressions))
    position = log["position"].to_numpy()
    clicked = log["clicked"].to_numpy(zero_copy_only=False)
    ctr_at = np.bincount(position - 1, clicked) / np.bincount(position - 1)
    exposure = np.bincount(item_rows, (ctr_at / ctr_at[0])[position - 1], minlength=len(catalog))
    clicks = np.bincount(item_rows, clicked, minlength=len(catalog))
    mean = clicks.sum() / exposure.sum()
    np.testing.assert_allclose(ranker.items[ITEM_FEATURES.index("item_ctr")],
                               np.log((clicks + 20 * mean) / (exposure + 20) / mean))
    model = ranker.preranking_model
    assert model.features == PRERANKING_FEATURES
    feature = {"title_bm25": stages.title_bm25, **{f: ranker.items[ITEM_FEATURES.index(f)][rows]
                                                   for f in ("item_ctr", "item_popularity")}}
    linear = sum(c * feature[f] for f, c in zip(model.features, model.coef, strict=True))
    valid = batch.candidate_rows >= 0
    np.testing.assert_allclose(stages.preranking_score[valid], linear[valid], rtol=1e-9, atol=1e-12)
    assert np.array_equal(stages.preranked, top_by_column(linear, stages.retrieved, 3))
    # the ranking model orders what pre-ranking kept; the rest is never shown
    score = ranker.score(batch)
    assert np.array_equal(score[stages.preranked], stages.ranking_score[stages.preranked])
    assert (score[~stages.preranked] == -np.inf).all()


def test_serving_scores_are_the_trained_models_on_the_training_features(fitted):
    """The serving path (summed per item and per query) computes the same linear scores as the models applied
    to the features they were trained on: no training-serving skew."""
    ranker, catalog = fitted
    batch = fresh_batch(catalog)
    stages = ranker.stages(batch)
    queries, index = batch.distinct_queries()
    x = query_item_features(catalog, ranker.items, ranker._query_table.take(ranker._table_rows(queries)), index,
                            batch.candidate_rows, stages.title_bm25)
    valid = batch.candidate_rows >= 0
    for model, served in ((ranker.ranking_model, stages.ranking_score),
                          (ranker.preranking_model, stages.preranking_score)):
        np.testing.assert_allclose(served[valid], np.tensordot(model.weights, x, axes=1)[valid], rtol=1e-12,
                                   atol=1e-12)


def test_the_ranking_model_recovers_the_click_model(fitted):
    ranker, catalog = fitted
    model = ranker.ranking_model
    coef = dict(zip(model.features, model.coef, strict=True))
    for name, true in TRUE_COEF.items():
        assert coef[name] == pytest.approx(true, abs=0.1), (name, coef)
    # features the clicks do not depend on get (nearly) nothing: at most 0.1 logit per standard deviation
    batch = fresh_batch(catalog)
    queries, index = batch.distinct_queries()
    x = query_item_features(catalog, ranker.items, ranker._query_table.take(ranker._table_rows(queries)), index,
                            batch.candidate_rows, ranker.stages(batch).title_bm25)
    valid = batch.candidate_rows >= 0
    for name in set(FEATURES) - set(TRUE_COEF):
        assert abs(coef[name]) * x[FEATURES.index(name)][valid].std() < 0.1, (name, coef)
    # the position effects are learnt in training and left out of the scores
    np.testing.assert_allclose(model.position_effect, TRUE_POSITION_EFFECT, atol=0.1)
    # what matters for ranking: the order of new candidates by true attractiveness
    truth = true_logits(catalog_table(catalog), batch.queries, np.maximum(batch.candidate_rows, 0))
    rho = spearmanr(ranker.stages(batch).ranking_score[valid], truth[valid]).statistic
    assert rho > 0.95, rho


def catalog_table(catalog: Catalog) -> pa.Table:
    """The columns ``true_logits`` reads, by catalog row."""
    names = {"brand": catalog.attribute_values["brand"], "colour": catalog.attribute_values["colour"]}
    return pa.table({"title": catalog.titles, "price": catalog.price,
                     **{k: v[catalog.attribute_codes[k]].tolist() for k, v in names.items()}})


def _scores(world: Path, batches: list[CandidateBatch]) -> tuple[CascadeRanker, list[np.ndarray]]:
    """The cascade fitted on ``world`` (a fresh catalog), and its scores of ``batches``."""
    ds = Dataset(world)
    ranker = CascadeRanker().fit(ds, Catalog.from_dataset(ds))
    return ranker, [ranker.score(b) for b in batches]


def _rewrite_clicks(folder: Path) -> None:
    """Every click of the table in ``folder`` flipped (and no purchases, which need a click)."""
    for f in folder.glob("*.parquet"):
        t = pq.read_table(f)
        t = t.set_column(t.schema.get_field_index("clicked"), "clicked", pc.invert(t["clicked"]))
        t = t.set_column(t.schema.get_field_index("purchased"), "purchased",
                         pa.array(np.zeros(len(t), bool)))
        pq.write_table(t.cast(IMPRESSIONS.schema), f)


def test_fitted_on_the_pre_period_only_and_deterministic(small_world, copy_world):
    batches = query_batches(Dataset(small_world), Catalog.from_dataset(Dataset(small_world)), batches=4,
                            batch_size=256)
    ranker, scores = _scores(small_world, batches)
    again, scores_again = _scores(small_world, batches)
    _rewrite_clicks(copy_world / "impressions")  # the experiment period's clicks
    changed_exp, scores_changed_exp = _scores(copy_world, batches)
    for other, other_scores in ((again, scores_again), (changed_exp, scores_changed_exp)):
        for a, b in ((ranker.ranking_model, other.ranking_model), (ranker.preranking_model, other.preranking_model)):
            assert np.array_equal(a.coef, b.coef) and a.intercept == b.intercept
        assert all(np.array_equal(x, y) for x, y in zip(scores, other_scores, strict=True))
    _rewrite_clicks(copy_world / "pre_impressions")  # the test can see a change where there is one
    changed_pre, _ = _scores(copy_world, batches)
    assert not np.array_equal(ranker.ranking_model.coef, changed_pre.ranking_model.coef)


def test_needs_pre_period_logs_and_consistent_sizes(tmp_path, click_log):
    (tmp_path / "items").mkdir()
    pq.write_table(pq.read_table(click_log / "items"), tmp_path / "items" / "part-00000.parquet")
    ds = Dataset(tmp_path)
    with pytest.raises(InputError, match="pre-period logs"):
        CascadeRanker().fit(ds, Catalog.from_dataset(ds))
    with pytest.raises(InputError, match="preranking_size <= retrieval_size"):
        make_ranker("cascade", {"retrieval_size": 10, "preranking_size": 20})
    assert isinstance(make_ranker("cascade", {"preranking_size": 30}), CascadeRanker)


CASCADE_RUN_YAML = """\
name: cascade_vs_v1
data: {{world: {world}, cache_dir: {cache}}}
arms: [{{name: control, ranker: cascade}}, {{name: treatment, ranker: v1}}]
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion}}
  - {{name: order_volume}}
simulation: {{behaviour: oracle, workers: 1, batch_size: 400}}
"""


@pytest.mark.slow
def test_an_offline_run_of_the_cascade_against_v1(small_world, tmp_path):
    from abplatform.pipeline import run_offline

    cache = world_cache(small_world, tmp_path / "cache")
    (tmp_path / "cascade.yaml").write_text(CASCADE_RUN_YAML.format(world=WORLD_YAML, cache=cache))
    run_dir, report = run_offline(tmp_path / "cascade.yaml", tmp_path / "results")
    assert Report.from_json((run_dir / "report.json").read_text()) == report
    assert (report.control, report.treatment) == ("control", "treatment")
    assert [m.metric for m in report.metrics] == ["item_ctr", "buyer_conversion", "order_volume"]
    for m in report.metrics:
        assert m.n_control and m.n_treatment and m.control_value and m.treatment_value and m.rel_effect is not None
