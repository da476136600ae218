"""Files the user names: inputs read once (pipes, /dev/stdin) with a size limit; outputs written all or nothing,
an unwritable one an InputError naming it; an unreadable replay cache replayed again with a warning."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from abplatform.errors import InputError
from abplatform.files import read_input, unwritable_folder, write_output

SUMMARY = ("metric,arm,type,n,sum_x,sum_x2\nrevenue,control,mean,400,210.5,900.25\n"
           "revenue,treatment,mean,410,230.0,990.0\n")


def _cli(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abplatform.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.mark.slow
def test_analyze_summary_reads_a_redirected_file_and_a_pipe(tmp_path):
    (tmp_path / "s.csv").write_text(SUMMARY)
    with open(tmp_path / "s.csv") as f:
        redirected = _cli("analyze-summary", "/dev/stdin", "--out", "a.json", cwd=tmp_path, stdin=f)
    assert redirected.returncode == 0, redirected.stderr
    piped = _cli("analyze-summary", "/dev/stdin", "--out", "b.json", cwd=tmp_path, input=SUMMARY)  # a pipe
    assert piped.returncode == 0, piped.stderr
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a == b and a["metrics"][0]["metric"] == "revenue"
    as_json = json.dumps([dict(zip(SUMMARY.splitlines()[0].split(","), r.split(","), strict=True))
                          for r in SUMMARY.splitlines()[1:]])
    piped_json = _cli("analyze-summary", "/dev/stdin", "--out", "c.json", cwd=tmp_path, input=as_json)
    assert piped_json.returncode == 0, piped_json.stderr
    assert json.loads((tmp_path / "c.json").read_text())["metrics"] == a["metrics"]


def test_read_input_reads_a_pipe_once(tmp_path):
    from abplatform.stats.summary import read_summary

    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, SUMMARY.encode()), os.close(w)))
    writer.start()
    suff, specs, options = read_summary(f"/dev/fd/{r}")
    writer.join()
    os.close(r)
    assert list(specs) == ["revenue"] and options["control"] == "control" and len(suff) == 2


def test_read_input_has_a_limit(tmp_path):
    f = tmp_path / "big.csv"
    f.write_bytes(b"x" * 2049)
    assert read_input(f, "summary file", limit=2049) == b"x" * 2049
    with pytest.raises(InputError, match=r"big.csv: too large \(more than 0 MiB\); expected a summary file"):
        read_input(f, "summary file", limit=2048)
    with pytest.raises(InputError, match="too large"):
        read_input(Path("/dev/zero"), "summary file", limit=1 << 20)


def test_write_output_on_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "card.json"
    out.write_text("the old card\n")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=f"--out: cannot write {out}: No space left on device"):
        write_output(out, b"x" * 100_000)
    assert out.read_text() == "the old card\n"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]  # no temporary file left


def test_write_output_to_a_device_writes_it_directly():
    write_output(Path("/dev/null"), b"{}\n")
    assert Path("/dev/null").is_char_device()
    with pytest.raises(InputError, match="cannot write /dev/full: No space left on device"):
        write_output(Path("/dev/full"), b"{}\n")
    assert Path("/dev/full").is_char_device()


def test_unwritable_folder(tmp_path):
    (tmp_path / "f").write_text("")
    assert unwritable_folder(tmp_path / "f") == "it is a file, not a folder"
    assert unwritable_folder(tmp_path / "f" / "results") == f"{tmp_path / 'f'} is not a folder"
    assert unwritable_folder(tmp_path / "new" / "results") is None
    assert not (tmp_path / "new").exists()  # checked, not created
    assert unwritable_folder(Path("/sys/abplatform-results")) == "permission denied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # the probe is gone


def test_an_unreadable_latency_cache_is_replayed_with_a_warning(tmp_path):
    from abplatform.pipeline import _read_latency

    said: list[str] = []
    assert _read_latency(tmp_path / "latency.json", said.append) is None
    assert said == []  # missing: no replay yet, nothing to warn about
    (tmp_path / "latency.json").write_text('{"ms_per_query": {"contr')
    assert _read_latency(tmp_path / "latency.json", said.append) is None
    (tmp_path / "latency.json").write_text("[]")
    assert _read_latency(tmp_path / "latency.json", said.append) is None
    assert len(said) == 2 and all(s.startswith(f"warning: {tmp_path / 'latency.json'}: ") for s in said), said
    assert "replaying again" in said[0] and "\n" not in said[0]
    (tmp_path / "latency.json").write_text('{"ms_per_query": {}}')
    assert _read_latency(tmp_path / "latency.json", said.append) == {"ms_per_query": {}}
