"""Tokenisation and Okapi BM25 (Robertson & Zaragoza 2009) over item titles, vectorised."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

_TOKEN = re.compile(r"[a-z0-9]+")
_PRICE_CAP = re.compile(r"\bunder\s+(\d+(?:\.\d+)?)")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def tokenize_many(texts: Sequence[str]) -> tuple[np.ndarray, pa.Array] | None:
    """Every token of every text (:func:`tokenize`'s, in order) with its text's index, tokenised by Arrow for
    the whole batch; None unless every text is ASCII (where Arrow's and Python's lower-casing agree)."""
    arr = pa.array(texts, pa.string())
    if arr.null_count or pc.all(pc.string_is_ascii(arr)).as_py() is not True:
        return None
    tokens = pc.split_pattern_regex(pc.ascii_lower(arr), r"[^a-z0-9]+")  # the complement of _TOKEN
    flat = pc.list_flatten(tokens)
    nonempty = pc.greater(pc.binary_length(flat), 0)  # split leaves "" at either end
    return pc.list_parent_indices(tokens).filter(nonempty).to_numpy().astype(np.int64), flat.filter(nonempty)


def lookup(tokens: pa.Array, words: Sequence[str]) -> np.ndarray:
    """Index of each token in ``words`` (distinct), -1 where absent."""
    found = pc.index_in(tokens, value_set=pa.array(words, pa.string()))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def padded(text_index: np.ndarray, values: np.ndarray, n: int, width: int = 0) -> np.ndarray:
    """(n, width) table of ``values`` grouped by ``text_index`` (non-decreasing), in order, -1 padded."""
    counts = np.bincount(text_index, minlength=n)
    out = np.full((n, max(width, int(counts.max(initial=0)))), -1, dtype=np.int64)
    out[text_index, np.arange(len(text_index)) - np.repeat(np.cumsum(counts) - counts, counts)] = values
    return out


def attribute_vocabulary(catalog) -> dict[str, dict[str, int]]:
    """Per attribute (brand, colour, ...), the catalog's values as lower-case words -> value code."""
    from abplatform.rankers.base import ATTRIBUTE_NAMES

    return {name: {str(v).lower(): code for code, v in enumerate(catalog.attribute_values[name])}
            for name in ATTRIBUTE_NAMES}


def query_constraints(query: str, vocabulary: dict[str, dict[str, int]]) -> tuple[np.ndarray, float]:
    """Attribute codes a query names (-1 where it names none) and its price cap ("under 50"; inf if none)."""
    attrs, caps = query_constraints_many([query], vocabulary)
    return attrs[0], float(caps[0])


def query_constraints_many(queries: Sequence[str], vocabulary: dict[str, dict[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`query_constraints` of each query: (n, attributes) codes, the last word naming one wins; (n,) caps."""
    lowered = [q.lower() for q in queries]
    caps = np.array([float(c.group(1)) if (c := _PRICE_CAP.search(q)) else np.inf for q in lowered], dtype=float)
    attrs = np.full((len(queries), len(vocabulary)), -1, dtype=np.int64)
    tokens = tokenize_many(queries) if len(queries) else None
    for a, values in enumerate(vocabulary.values()):
        if tokens is None:
            for i, q in enumerate(lowered):
                for t in _TOKEN.findall(q):
                    attrs[i, a] = values.get(t, attrs[i, a])
            continue
        word = lookup(tokens[1], list(values))
        named = word >= 0
        query, word = tokens[0][named][::-1], word[named][::-1]
        firsts, last = np.unique(query, return_index=True)  # reversed, so each query's last naming word
        attrs[firsts, a] = np.fromiter(values.values(), np.int64, len(values))[word[last]]
    return attrs, caps


class BM25Index:
    """BM25 term weights w(t, d) = idf(t) tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)).

    ``score(query_rows, doc_rows)`` sums w(t, d) over the query's distinct terms for each
    (query, candidate) cell, with idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)).
    """

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75):
        tokens = [tokenize(d) for d in docs]
        self.vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, toks in enumerate(tokens):
            for t in toks:
                rows.append(i)
                cols.append(self.vocab.setdefault(t, len(self.vocab)))
        tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(self.vocab)))
        tf.sum_duplicates()
        n_docs = len(docs)
        df = np.bincount(tf.indices, minlength=len(self.vocab))
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        dl = np.asarray(tf.sum(axis=1)).ravel()
        norm = k1 * (1 - b + b * dl / dl.mean())
        tf = tf.tocoo()
        w = idf[tf.col] * tf.data * (k1 + 1) / (tf.data + norm[tf.row])
        # titles share a small vocabulary, so a dense table makes scoring gathers; term-major, so one
        # term's weights over all items sit together in cache
        self.n_docs = n_docs
        self.term_weights = sp.csr_matrix((w, (tf.col, tf.row)), shape=(len(self.vocab), n_docs)).toarray().ravel()
        # per distinct query seen: its sorted distinct term ids, padded with -1 to a common width
        self._vocab_words = list(self.vocab)  # term id -> word
        self._query_rows: dict[str, int] = {}
        self._terms = np.full((0, 1), -1, dtype=np.int64)
        self._n_queries = 0

    def query_terms(self, query: str) -> list[int]:
        """The query's distinct term ids, ascending."""
        return sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})

    def _new_terms(self, queries: list[str]) -> np.ndarray:
        """(len(queries), width) distinct term ids of each query, ascending, -1 padded."""
        tokens = tokenize_many(queries)
        if tokens is None:
            terms = [self.query_terms(q) for q in queries]
            return padded(np.repeat(np.arange(len(queries)), list(map(len, terms))),
                          np.array([t for ts in terms for t in ts], dtype=np.int64), len(queries))
        query, term = tokens[0], lookup(tokens[1], self._vocab_words)
        known = term >= 0
        pairs = np.unique(query[known] * len(self.vocab) + term[known])  # by query, then term id
        return padded(pairs // len(self.vocab), pairs % len(self.vocab), len(queries))

    def _term_rows(self, queries: Sequence[str]) -> np.ndarray:
        """Row of each query in the padded term table, adding the queries not seen before."""
        rows = np.fromiter(map(self._query_rows.get, queries, repeat(-1)), np.int64, len(queries))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            new = list(dict.fromkeys(queries[i] for i in missing))
            terms = self._new_terms(new)
            width = max(self._terms.shape[1], terms.shape[1])
            start, need = self._n_queries, self._n_queries + len(new)
            if need > len(self._terms) or width > self._terms.shape[1]:
                capacity = len(self._terms) if need <= len(self._terms) else max(need, 2 * len(self._terms))
                grown = np.full((capacity, width), -1, dtype=np.int64)
                grown[:start, :self._terms.shape[1]] = self._terms[:start]
                self._terms = grown
            self._terms[start:need, :terms.shape[1]] = terms
            self._terms[start:need, terms.shape[1]:] = -1
            self._query_rows.update(zip(new, range(start, need)))
            self._n_queries = need
            rows[missing] = [self._query_rows[queries[i]] for i in missing]
        return rows

    def score(self, queries: Sequence[str], doc_rows: np.ndarray,
              query_index: np.ndarray | None = None) -> np.ndarray:
        """BM25 of each query against each of its candidate documents; doc_rows (n, c), -1 = padding.

        With ``query_index``, ``queries`` are the distinct queries and row i uses queries[query_index[i]]."""
        n, c = doc_rows.shape
        rows = self._term_rows(queries)
        terms = self._terms[rows if query_index is None else rows[query_index]]  # (n, width), -1 padded
        docs = np.maximum(doc_rows, 0)

        def weights(sessions: np.ndarray, j: int) -> np.ndarray:  # w(j-th term of each session, its candidates)
            return np.take(self.term_weights, (terms[sessions, j] * self.n_docs)[:, None] + docs[sessions])

        # each session's term weights summed as w1 + (w2 + w3 + ...) in ascending term order: the order in
        # which np.add.reduceat sums a segment (numpy's pairwise sum runs left to right below 8 items), which
        # the scores have always used, without a (terms, c) table; sessions with more terms use reduceat
        out = np.zeros((n, c))
        rest = np.zeros((n, c))
        for j in range(1, min(terms.shape[1], 8)):
            has = np.flatnonzero(terms[:, j] >= 0)
            rest[has] += weights(has, j)
        has = np.flatnonzero(terms[:, 0] >= 0)
        out[has] = weights(has, 0) + rest[has]
        long = np.flatnonzero((terms[:, 8:] >= 0).any(axis=1))
        if len(long):
            named = terms[long] >= 0
            lengths = named.sum(axis=1)
            cells = (terms[long][named] * self.n_docs)[:, None] + docs[long][np.repeat(np.arange(len(long)), lengths)]
            out[long] = np.add.reduceat(np.take(self.term_weights, cells), np.r_[0, np.cumsum(lengths)[:-1]], axis=0)
        return np.where(doc_rows >= 0, out, 0.0)
