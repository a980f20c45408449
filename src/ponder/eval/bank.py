"""The sample bank: every sample ever drawn for an evaluation, in one SQLite file.

One row per sample, committed as soon as it arrives (WAL journal), keyed by run, question
and sample index. A run is identified by everything that changes the samples: dataset,
model id, prompt-template hash and sampling parameters (the seed of sample i of a question
is derived from the run's base seed, the question id and i). Asking again for the same run
reuses what is stored and generates only the missing indices, so a killed evaluation loses
at most the call in flight. Samples of different runs never mix.

A bank in use by another process is refused (a lock file next to it); a file that is not a
healthy SQLite bank raises `DataError` and is never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    model_id TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    run_key TEXT NOT NULL REFERENCES runs(run_key),
    question_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    text TEXT NOT NULL,
    answer TEXT,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    mean_logprob REAL,
    sum_logprob REAL,
    scores TEXT NOT NULL,
    score_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    flops REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run_key, question_id, idx)
);
"""


@dataclass(frozen=True, slots=True)
class SampleRow:
    idx: int
    seed: int
    text: str
    answer: str | None
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    mean_logprob: float | None
    sum_logprob: float | None
    scores: Mapping[str, float] = field(default_factory=dict)
    score_tokens: int = 0
    """Tokens decoded by scorers judging this sample."""
    seconds: float = 0.0
    """This sample's share of its call's wall time."""
    flops: float = 0.0


def run_key(dataset: str, model_id: str, template_hash: str, params: Mapping[str, Any]) -> str:
    blob = json.dumps([dataset, model_id, template_hash, dict(params)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class SampleBank:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DataError(
                f"the sample bank {self.path} is in use by another run; wait for it to finish "
                "or use another --bank"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, timeout=5)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
            if tables and not {"runs", "samples"} <= tables:
                raise DataError(f"{self.path} is an SQLite file but not a ponder sample bank")
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise DataError(f"the sample bank {self.path} is corrupt; it was left untouched")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise DataError(
                f"{self.path} is not a usable sample bank ({exc}); it was left untouched — "
                "move it away or pass another --bank"
            ) from None
        except DataError:
            self._release()
            raise

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def close(self) -> None:
        self._release()

    def __enter__(self) -> SampleBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_run(
        self, dataset: str, model_id: str, template_hash: str, params: Mapping[str, Any]
    ) -> tuple[str, list[dict[str, Any]]]:
        """The key of this run (created if new) and the other runs on the same dataset."""
        key = run_key(dataset, model_id, template_hash, params)
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    dataset,
                    model_id,
                    template_hash,
                    json.dumps(dict(params), sort_keys=True),
                    time.time(),
                ),
            )
        others = [
            {"run_key": r[0], "model_id": r[1], "params": json.loads(r[2])}
            for r in self._db.execute(
                "SELECT run_key, model_id, params FROM runs WHERE dataset = ? AND run_key != ?",
                (dataset, key),
            )
        ]
        return key, others

    def indices(self, key: str, question_id: str) -> set[int]:
        rows = self._db.execute(
            "SELECT idx FROM samples WHERE run_key = ? AND question_id = ?", (key, question_id)
        )
        return {r[0] for r in rows}

    def add(self, key: str, question_id: str, rows: Iterable[SampleRow]) -> None:
        for row in rows:
            with self._db:  # one transaction per sample: committed as it arrives
                self._db.execute(
                    "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        key, question_id, row.idx, row.seed, row.text, row.answer,
                        row.finish_reason, row.prompt_tokens, row.cached_tokens,
                        row.completion_tokens, row.mean_logprob, row.sum_logprob,
                        json.dumps(dict(row.scores)), row.score_tokens, row.seconds, row.flops,
                        time.time(),
                    ),
                )  # fmt: skip

    def update_scores(
        self, key: str, question_id: str, idx: int, scores: Mapping[str, float], score_tokens: int
    ) -> None:
        with self._db:
            self._db.execute(
                "UPDATE samples SET scores = ?, score_tokens = ? "
                "WHERE run_key = ? AND question_id = ? AND idx = ?",
                (json.dumps(dict(scores)), score_tokens, key, question_id, idx),
            )

    def samples(self, key: str, question_id: str) -> list[SampleRow]:
        cursor = self._db.execute(
            "SELECT idx, seed, text, answer, finish_reason, prompt_tokens, cached_tokens, "
            "completion_tokens, mean_logprob, sum_logprob, scores, score_tokens, seconds, flops "
            "FROM samples WHERE run_key = ? AND question_id = ? ORDER BY idx",
            (key, question_id),
        )
        return [
            SampleRow(*r[:10], json.loads(r[10]), *r[11:])  # type: ignore[arg-type]
            for r in cursor
        ]

    def count(self, key: str | None = None) -> int:
        if key is None:
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        return int(
            self._db.execute("SELECT COUNT(*) FROM samples WHERE run_key = ?", (key,)).fetchone()[0]
        )
