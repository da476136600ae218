#!/usr/bin/env bash
# abplatform as a user installs it: the built wheel, NOT editable, in a fresh venv with the lock
# (constraints.txt) as constraints, run from a folder outside the repository. Checks that the wheel
# holds every module, the SQL and the dashboard; that `abplatform --help`, a small online
# experiment and its gate work; and that `abplatform dashboard` answers HTTP 200 on 127.0.0.1 and
# its pages render the run without an exception. Needs .venv with the dev extra (`make install`),
# for `build`. Usage: bash .ci/wheel_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
LOCK=$ROOT/constraints.txt
START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/abplatform-wheel-check.XXXXXX")
DASH_PID=""

say() { echo "wheel-check [$((SECONDS - START)) s]: $*"; }
fail() { echo "wheel-check: FAILED: $*" >&2; exit 1; }
cleanup() {
  if [ -n "$DASH_PID" ] && kill -0 "$DASH_PID" 2>/dev/null; then
    kill -- "-$DASH_PID" 2>/dev/null || kill "$DASH_PID" 2>/dev/null || true
    wait "$DASH_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x .venv/bin/python ] || make install
.venv/bin/python -c "import build" 2>/dev/null || fail ".venv has no 'build' (run make install: it comes with the dev extra)"

# 1. a clean copy of the source (the files git tracks or would track: no stale *.egg-info/SOURCES.txt
#    or build/ folder for setuptools to take files from), its sdist, then the wheel from the sdist
say "building the sdist and the wheel"
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
  | tar --null -T - -cf - | tar -xf - -C "$WORK/src"
if ! .venv/bin/python -m build --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log"; fail "python -m build"
fi
WHEEL=$(ls "$WORK"/dist/abplatform-*.whl)
say "built $(basename "$WHEEL")"

# 2. the wheel holds every source module, the SQL and the dashboard (a subpackage missing from
#    [tool.setuptools] packages in pyproject.toml shows up here)
(cd "$WORK/src" && "$ROOT/.venv/bin/python" - "$WHEEL") <<'EOF'
import sys
import zipfile
from pathlib import Path

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
want = {p.as_posix() for p in Path("abplatform").rglob("*") if p.suffix in (".py", ".typed") and "__pycache__" not in p.parts}
want |= {f"abplatform/{p.as_posix()}" for p in Path("sql").glob("*.sql")}
want |= {f"abplatform/{p.as_posix()}" for p in Path("dashboards").rglob("*.py") if "__pycache__" not in p.parts}
want.add("abplatform/dashboards/.streamlit/config.toml")  # the dashboard's theme and toolbar
missing = sorted(want - names)
if missing:
    sys.exit("wheel-check: FAILED: the wheel lacks " + ", ".join(missing) + " (a package missing from "
             "[tool.setuptools] packages / package-dir in pyproject.toml?)")
sql = sorted(n for n in names if n.startswith("abplatform/sql/") and n.endswith(".sql"))
dash = sorted(n for n in names if n.startswith("abplatform/dashboards/"))
print(f"wheel-check: the wheel has all {len(want)} source files: {len(sql)} SQL files, {len(dash)} dashboard files")
EOF

# 3. a fresh venv, the wheel installed non-editable with the lock's versions
say "installing the wheel into a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --no-compile -c "$LOCK" "$WHEEL" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; fail "pip install the wheel"; }
"$WORK/venv/bin/python" -c "import abplatform" || fail "the wheel did not install"
ABP=$WORK/venv/bin/abplatform
say "installed"

# 4. from a folder outside the repository: --help, a small online experiment, its gate
mkdir -p "$WORK/run/data"
cp experiments/onesearch_online_ab.yaml "$WORK/run/"
cp -r experiments/data/onesearch_online_ab "$WORK/run/data/"
cd "$WORK/run"
"$WORK/venv/bin/python" - "$ROOT" <<'EOF'
import sys
from pathlib import Path

import abplatform
from abplatform import resources

root = Path(sys.argv[1]).resolve()
for p in (Path(abplatform.__file__), resources.sql_dir(), resources.dashboard_app()):
    if p.resolve().is_relative_to(root):
        sys.exit(f"wheel-check: FAILED: {p} is inside the repository, not the installed wheel")
print(f"wheel-check: package data from the install: {resources.sql_dir()}, {resources.dashboard_app()}")
EOF
"$ABP" --help >"$WORK/help.txt" || { cat "$WORK/help.txt"; fail "abplatform --help"; }
grep -q "dashboard" "$WORK/help.txt" || { cat "$WORK/help.txt"; fail "abplatform --help lists no commands"; }
say "abplatform --help OK; running onesearch_online_ab.yaml"
"$ABP" run onesearch_online_ab.yaml --results results --no-segments >"$WORK/run.log" 2>&1 \
  || { cat "$WORK/run.log"; fail "abplatform run onesearch_online_ab.yaml"; }
RUNS=(results/onesearch_online_ab/*/)
if [ "${#RUNS[@]}" -ne 1 ] || [ ! -f "${RUNS[0]}report.json" ]; then
  cat "$WORK/run.log"; fail "not one run folder with a report.json under results/onesearch_online_ab/"
fi
RUN_DIR=${RUNS[0]%/}
set +e
"$ABP" gate "$RUN_DIR" >"$WORK/gate.log" 2>&1
GATE=$?
set -e
if [ "$GATE" -gt 1 ] || grep -q "Traceback" "$WORK/gate.log"; then
  cat "$WORK/gate.log"; fail "abplatform gate $RUN_DIR exited $GATE"
fi
say "run $RUN_DIR OK; gate exit $GATE ($([ "$GATE" -eq 0 ] && echo promote || echo hold))"

# 4b. an A/B/n gate: three arms on a small synthetic world (V1 the control, V2, and V1 again as a null
#     arm, V2 also compared with it); the exit code, JUnit, $GITHUB_OUTPUT and the step summary name V2
cat >three_arms.yaml <<'YAML'
name: three_arms
data: {world: {users: 3000, days: 5, pre_days: 3, items: 2000, seed: 11}, cache_dir: data}
control: v1
arms: [{name: v1, ranker: v1}, {name: v2, ranker: v2}, {name: v1b, ranker: v1}]
comparisons: [{treatment: v2, control: v1b}]
metrics:
  - {name: item_ctr, role: primary}
  - {name: relevance, role: guardrail, margin: 0.01}
segments: []
simulation: {behaviour: oracle}
decision: {latency_margin: 5.0, latency_repetitions: 40}
YAML
set +e
GITHUB_OUTPUT=$WORK/github_output GITHUB_STEP_SUMMARY=$WORK/step_summary.md \
  "$ABP" gate three_arms.yaml --results results --junit "$WORK/three.xml" >"$WORK/three.log" 2>&1
GATE=$?
set -e
[ "$GATE" -eq 0 ] || { cat "$WORK/three.log"; fail "abplatform gate three_arms.yaml exited $GATE, not 0 (promote v2)"; }
grep -qx "arm=v2" "$WORK/github_output" || { cat "$WORK/github_output"; fail "GITHUB_OUTPUT does not name arm v2"; }
grep -q '<property name="arm" value="v2"' "$WORK/three.xml" || fail "the JUnit XML does not name arm v2"
grep -q '^\*\*Decision: PROMOTE v2\*\*' "$WORK/step_summary.md" || fail "the step summary does not name arm v2"
say "three-arm gate: exit $GATE; $(tr '\n' ' ' <"$WORK/github_output"); $(grep -m1 'Decision' "$WORK/step_summary.md")"

# 5. the dashboard: HTTP 200 within 60 s, then every page renders the run (AppTest, in-process)
PORT=$("$WORK/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$ABP" dashboard --results results --port "$PORT" >"$WORK/dashboard.log" 2>&1 &
DASH_PID=$!
"$WORK/venv/bin/python" - "$PORT" "$DASH_PID" <<'EOF' || { cat "$WORK/dashboard.log"; fail "the dashboard did not answer"; }
import os
import sys
import time
import urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("wheel-check: the dashboard process exited")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page, \
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as health:
            if page.status == 200 and health.status == 200:
                print(f"wheel-check: the dashboard answers HTTP {page.status} on http://127.0.0.1:{port}/ "
                      f"(health: {health.read().decode().strip()})")
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("wheel-check: no HTTP 200 from the dashboard within 60 s")
    time.sleep(0.5)
EOF
kill -- "-$DASH_PID" 2>/dev/null || kill "$DASH_PID" 2>/dev/null || true
wait "$DASH_PID" 2>/dev/null || true
DASH_PID=""
ABPLATFORM_RESULTS=$WORK/run/results "$WORK/venv/bin/python" - <<'EOF'
import logging
import sys

from streamlit.testing.v1 import AppTest

from abplatform.resources import dashboard_app

# AppTest outside a `streamlit run` logs "missing ScriptRunContext" (harmless, says streamlit)
logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
app = dashboard_app()
at = AppTest.from_file(str(app), default_timeout=60)
at.run()
pages = sorted(p.name for p in (app.parent / "views").glob("*.py") if p.name != "__init__.py")
for page in pages:
    if at.exception:
        break
    at.switch_page(f"views/{page}").run()
if at.exception:
    sys.exit(f"wheel-check: FAILED: the dashboard page raised: {[e.value for e in at.exception]}")
print(f"wheel-check: the dashboard's {len(pages)} pages render the run without an exception")
EOF
say "passed"
