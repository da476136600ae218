"""Numbers do not depend on the interpreter's string-hash seed (set and dict orders of strings):
V2's query intents and the fitted users' query features, float sums over a query's words, are
bit-identical under different seeds."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import hashlib, sys
import numpy as np
from abplatform.dataset import Dataset
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.rankers import Catalog, V2Ranker
ds = Dataset(sys.argv[1])
con = ds.connect()
queries = [r[0] for r in con.execute("SELECT DISTINCT query FROM sessions ORDER BY query").fetchall()]
con.close()
v2 = V2Ranker().fit(ds, Catalog.from_dataset(ds))
digest = hashlib.sha256()
for q in queries:
    probs, attrs, cap = v2.intent(q)
    digest.update(probs.tobytes() + attrs.tobytes() + repr(cap).encode())
users = FittedBehaviour("pbm", calibrate=False).fit(ds, Catalog.from_dataset(ds))
for i, q in enumerate(users.queries):
    for part in users._query_features(i, q):
        digest.update(np.asarray(part).tobytes())
print(len(queries), sum(len(q.split()) > 2 for q in queries), digest.hexdigest())
"""


@pytest.mark.slow
@pytest.mark.parametrize("seeds", [("0", "1", "2")])
def test_query_word_sums_do_not_depend_on_the_hash_seed(small_world, seeds):
    outputs = set()
    for seed in seeds:
        run = subprocess.run([sys.executable, "-c", SCRIPT, str(small_world)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        outputs.add(run.stdout.strip())
    assert len(outputs) == 1, outputs
    n_queries, n_long, _ = outputs.pop().split()
    assert int(n_queries) > 100 and int(n_long) > 10  # many multi-word queries, where the order mattered
