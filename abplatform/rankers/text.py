"""Tokenisation and Okapi BM25 (Robertson & Zaragoza 2009) over item titles, vectorised."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import repeat

import numpy as np
import scipy.sparse as sp

from abplatform.contract import ATTRIBUTE_NAMES

_TOKEN = re.compile(r"[a-z0-9]+")
_PRICE_CAP = re.compile(r"\bunder\s+(\d+(?:\.\d+)?)")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def attribute_vocabulary(catalog) -> dict[str, dict[str, int]]:
    """Per attribute (brand, colour, ...), the catalog's values as lower-case words -> value code."""
    return {name: {str(v).lower(): code for code, v in enumerate(catalog.attribute_values[name])}
            for name in ATTRIBUTE_NAMES}


def table_rows(keys: Sequence[str], rows: dict[str, int], append: Callable[[list[str]], None]) -> np.ndarray:
    """Row of each key in a table that grows at its end: ``rows`` maps the keys already in it;
    ``append(new)`` adds the rows of the keys not seen before (distinct, in first-occurrence order),
    which then get the next row numbers."""
    found = np.fromiter(map(rows.get, keys, repeat(-1)), np.int64, len(keys))
    missing = np.flatnonzero(found < 0)
    if len(missing):
        new = list(dict.fromkeys(keys[i] for i in missing.tolist()))
        start = len(rows)
        append(new)
        rows.update(zip(new, range(start, start + len(new)), strict=True))
        found[missing] = [rows[keys[i]] for i in missing.tolist()]
    return found


def query_constraints(query: str, vocabulary: dict[str, dict[str, int]]) -> tuple[np.ndarray, float]:
    """Attribute codes a query names (-1 where it names none) and its price cap ("under 50"; inf if none)."""
    attrs, caps = query_constraints_many([query], vocabulary)
    return attrs[0], float(caps[0])


def query_constraints_many(queries: Sequence[str],
                           vocabulary: dict[str, dict[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`query_constraints` of each query: (n, attributes) codes, the last word naming one wins; (n,) caps."""
    named: dict[str, list[tuple[int, int]]] = {}  # word -> (attribute, code) of every attribute value it is
    for a, values in enumerate(vocabulary.values()):
        for word, code in values.items():
            named.setdefault(word, []).append((a, code))
    rows, caps = [], []
    for query in queries:
        lower = query.lower()
        row = [-1] * len(vocabulary)
        for t in _TOKEN.findall(lower):
            for a, code in named.get(t, ()):
                row[a] = code
        rows.append(row)
        cap = _PRICE_CAP.search(lower)
        caps.append(float(cap.group(1)) if cap else np.inf)
    return np.array(rows, dtype=np.int64).reshape(len(queries), len(vocabulary)), np.array(caps, dtype=float)


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
        coo = tf.tocoo()
        w = idf[coo.col] * coo.data * (k1 + 1) / (coo.data + norm[coo.row])
        # titles share a small vocabulary, so a dense table makes scoring gathers; term-major, so one
        # term's weights over all items sit together in cache; its last row, all zeros, is "no term"
        self.n_docs = n_docs
        self._no_term = len(self.vocab)
        self.term_weights = sp.csr_matrix((w, (coo.col, coo.row)),
                                          shape=(len(self.vocab) + 1, n_docs)).toarray().ravel()
        # per distinct query seen: its sorted distinct term ids, padded with -1 to a common width
        self._query_rows: dict[str, int] = {}
        self._terms = np.full((0, 1), -1, dtype=np.int64)

    def query_terms(self, query: str) -> list[int]:
        """The query's distinct term ids, ascending."""
        return sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})

    def prepare(self, queries: Sequence[str]) -> None:
        """Tokenise ``queries`` into the term table now, so scoring them later only looks them up."""
        self._term_rows(queries)

    def _term_rows(self, queries: Sequence[str]) -> np.ndarray:
        """Row of each query in the padded term table, adding the queries not seen before."""
        return table_rows(queries, self._query_rows, self._append_terms)

    def _append_terms(self, new: list[str]) -> None:
        terms = [self.query_terms(q) for q in new]
        width = max(self._terms.shape[1], max(map(len, terms)))
        start, need = len(self._query_rows), len(self._query_rows) + len(new)
        if need > len(self._terms) or width > self._terms.shape[1]:
            capacity = len(self._terms) if need <= len(self._terms) else max(need, 2 * len(self._terms))
            grown = np.full((capacity, width), -1, dtype=np.int64)
            grown[:start, :self._terms.shape[1]] = self._terms[:start]
            self._terms = grown
        self._terms[start:need] = np.array([t + [-1] * (width - len(t)) for t in terms], dtype=np.int64)

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
        for j in range(1, min(terms.shape[1], 8)):
            has = np.flatnonzero(terms[:, j] >= 0)
            out[has] += weights(has, j)
        # then w1, of every session at once (almost all have a term; the others add the "no term" row's
        # zeros): (w2 + w3 + ...) + w1 is w1 + (w2 + w3 + ...), bit for bit
        first = np.where(terms[:, 0] >= 0, terms[:, 0], self._no_term)
        out += np.take(self.term_weights, (first * self.n_docs)[:, None] + docs)
        long = np.flatnonzero((terms[:, 8:] >= 0).any(axis=1))
        if len(long):
            named = terms[long] >= 0
            lengths = named.sum(axis=1)
            cells = (terms[long][named] * self.n_docs)[:, None] + docs[long][np.repeat(np.arange(len(long)), lengths)]
            out[long] = np.add.reduceat(np.take(self.term_weights, cells), np.r_[0, np.cumsum(lengths)[:-1]], axis=0)
        out[doc_rows < 0] = 0.0
        return out
