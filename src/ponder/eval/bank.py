"""The sample bank: every sample an evaluation ever drew, in one SQLite file.

Tables:

* `runs`: what changes the samples: dataset, model id (weights and quantization), prompt
  template hash and sampling parameters (temperature, top-p, max tokens, base seed...).
  Their hash is the run key. The number of samples is not part of it: asking for 16 where
  8 are stored draws only the 8 missing ones.
* `samples`: one row per (run, question id, sample index), committed on its own as soon as
  the backend returns it (WAL journal), with its seed, text, extracted answer, token counts,
  FLOPs, seconds, logprob summary and the token logprobs themselves (zlib-compressed JSON),
  so a logprob scorer added later can still score it.
* `scores`: one row per (sample, scorer): the score (NULL for NaN) and what scoring it cost.
* `results`: step-level (and other live) strategies, which cannot be replayed from samples:
  one `Result` JSON per (run, question, strategy configuration, budget).

Samples of a run never mix with another run's: `open_run` refuses a bank that holds the
same dataset drawn with other settings unless asked to keep several runs side by side.
A bank in use by another run is refused: an advisory lock (`flock`) on the database file
itself, so every name of the file (a hard link, a symbolic link, another path to it) sees
the same lock, and the kernel releases it even after `kill -9`. (SQLite's own locks are
kept per file name for its WAL and would let two names of one file corrupt it.) A file that
is not a healthy ponder bank raises `DataError` and is never written to.

`merge` copies another bank's rows into this one (`ponder bank merge`, `eval/merge.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core import Completion, TokenLogprob
from ponder.errors import DataError
from ponder.eval.question import Question
from ponder.result import Candidate, Result
from ponder.serialize import dumps
from ponder.usage import Usage

SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,
    dataset TEXT NOT NULL,
    model_id TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    sampling TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    run TEXT NOT NULL REFERENCES runs(run),
    question_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    question_digest TEXT NOT NULL,
    text TEXT NOT NULL,
    answer TEXT,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    flops REAL NOT NULL,
    seconds REAL NOT NULL,
    mean_logprob REAL,
    sum_logprob REAL,
    top_logprobs INTEGER NOT NULL,
    logprobs BLOB,
    created REAL NOT NULL,
    PRIMARY KEY (run, question_id, idx)
);
CREATE TABLE IF NOT EXISTS scores (
    run TEXT NOT NULL,
    question_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    scorer TEXT NOT NULL,
    score REAL,
    usage TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run, question_id, idx, scorer),
    FOREIGN KEY (run, question_id, idx) REFERENCES samples(run, question_id, idx)
);
CREATE TABLE IF NOT EXISTS results (
    run TEXT NOT NULL REFERENCES runs(run),
    question_id TEXT NOT NULL,
    config TEXT NOT NULL,
    k INTEGER NOT NULL,
    label TEXT NOT NULL,
    question_digest TEXT NOT NULL,
    correct INTEGER NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (run, question_id, config, k)
);
"""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything that changes what the model samples; its hash keys the samples."""

    dataset: str
    model_id: str
    template_hash: str
    sampling: Mapping[str, Any]

    @property
    def key(self) -> str:
        blob = json.dumps(
            [self.dataset, self.model_id, self.template_hash, dict(self.sampling)], sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def differences(self, other: RunSpec) -> list[str]:
        """What `other` was drawn with that this spec does not ask for, in words."""
        out = []
        if other.model_id != self.model_id:
            out.append(f"model {other.model_id} (asked {self.model_id})")
        if other.template_hash != self.template_hash:
            out.append("another prompt template")
        for name in sorted(set(self.sampling) | set(other.sampling)):
            mine, theirs = self.sampling.get(name), other.sampling.get(name)
            if mine != theirs:
                out.append(f"{name}={theirs} (asked {mine})")
        return out


@dataclass(frozen=True, slots=True)
class Merged:
    """What `SampleBank.merge` copied from one bank."""

    samples: int = 0
    scores: int = 0
    results: int = 0
    duplicates: int = 0
    """Samples this bank held already, with the same seed and text."""
    conflicts: int = 0
    """Samples this bank held already under another text: this bank's are kept (with their
    scores), the other's and its scores are not copied."""

    def __add__(self, other: Merged) -> Merged:
        return Merged(*(getattr(self, f) + getattr(other, f) for f in Merged.__dataclass_fields__))


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored sample with the scores it has so far."""

    idx: int
    seed: int
    text: str
    answer: str | None
    finish_reason: str
    usage: Usage
    """What drawing it cost: its tokens (the shared prompt charged to the first sample of
    each backend call), FLOPs, and its share of the call's wall time."""
    mean_logprob: float | None = None
    sum_logprob: float | None = None
    top_logprobs: int = 0
    """Alternatives kept per token (-1: no token logprobs were returned)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Loaded only on request (`SampleBank.samples(..., logprobs=True)`)."""
    confidences: tuple[float, ...] | None = None
    """Per-token confidences (`core.token_confidences`), kept instead of the logprobs when a
    replayed strategy reads them."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """Scorer name -> score (NaN when the scorer could not judge it)."""
    score_usage: Mapping[str, Usage] = field(default_factory=dict)
    """Scorer name -> what scoring this sample cost."""

    def completion(self) -> Completion:
        """The sample as the backend returned it (what scorers read)."""
        return Completion(
            text=self.text,
            finish_reason="length" if self.finish_reason == "length" else "stop",
            usage=self.usage,
            logprobs=self.logprobs,
        )

    def candidate(self, cluster: int | None) -> Candidate:
        return Candidate(
            text=self.text,
            answer=self.answer,
            usage=self.usage,
            finish_reason=self.finish_reason,
            mean_logprob=self.mean_logprob,
            sum_logprob=self.sum_logprob,
            scores=dict(self.scores),
            cluster=cluster,
            confidences=self.confidences,
        )


@dataclass(frozen=True, slots=True)
class StoredResult:
    label: str
    k: int
    correct: bool
    data: Mapping[str, Any]
    """`Result.to_dict()` of the run."""

    def result(self) -> Result:
        return Result.from_dict(self.data)


class SampleBank:
    """An open, locked bank. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise DataError(f"the sample bank {self.path} is a folder; give a file path")
        self._check_header()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(
                f"cannot make the folder of the sample bank {self.path} ({exc.strerror}); "
                "pass another --bank"
            ) from None
        self._lock = self._acquire_lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._validate()
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives the process being killed (not a power cut)
            self._db.execute("PRAGMA synchronous=NORMAL")
            # every statement is idempotent, so no transaction is needed around them
            self._db.executescript(SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
        except sqlite3.DatabaseError as exc:
            self._release()
            raise DataError(
                f"{self.path} is not a usable sample bank ({exc}); it was left untouched: move "
                "it away or pass another --bank"
            ) from None
        except BaseException:
            self._release()
            raise

    def _check_header(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb") as raw:
            header = raw.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise DataError(
                f"{self.path} is not an SQLite file, so not a sample bank; it was left "
                "untouched: move it away or pass another --bank"
            )

    def _acquire_lock(self) -> int:
        """Lock the database file (creating it empty when new): its inode, not its name."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataError(
                f"cannot open the sample bank {self.path} for writing ({exc.strerror}); "
                "pass another --bank"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(
                f"the sample bank {self.path} is in use by another run (under this or another "
                "name); wait for it to finish or pass another --bank"
            ) from None
        return fd

    def _validate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        query = "SELECT name FROM sqlite_master WHERE type='table'"
        tables = {r[0] for r in self._db.execute(query)}
        if tables and not {"runs", "samples"} <= tables:
            raise DataError(
                f"{self.path} is an SQLite database but not a ponder sample bank; it was left "
                "untouched: pass another --bank"
            )
        if version > SCHEMA_VERSION:
            raise DataError(
                f"{self.path} was written by a newer ponder (bank version {version}); upgrade "
                "ponder or pass another --bank"
            )
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise DataError(
                f"the sample bank {self.path} is corrupt ({check}); it was left untouched: "
                "move it away or pass another --bank"
            )

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self._lock)

    def close(self) -> None:
        self._release()

    def __enter__(self) -> SampleBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise DataError(
                f"cannot write the sample bank {self.path} ({exc}); is another program holding it?"
            ) from None

    # runs

    def open_run(self, spec: RunSpec, *, keep_others: bool = False) -> str:
        """The key of this run, created if new.

        Raises `DataError` when the bank holds samples of the same dataset drawn with other
        settings, unless `keep_others` (they stay apart either way).
        """
        key = spec.key
        known = self._db.execute("SELECT 1 FROM runs WHERE run = ?", (key,)).fetchone()
        if known is None and not keep_others:
            for other in self.runs(spec.dataset):
                if other.key == key or not self.count(other.key):
                    continue
                differences = "; ".join(spec.differences(other))
                raise DataError(
                    f"the sample bank {self.path} holds {self.count(other.key)} samples of "
                    f"{spec.dataset} drawn with {differences}. Samples drawn with other "
                    "settings are never mixed: ask for the same settings, pass another --bank "
                    "(or --out), or pass --new-run to keep both runs in this bank"
                )
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    spec.dataset,
                    spec.model_id,
                    spec.template_hash,
                    json.dumps(dict(spec.sampling), sort_keys=True),
                    time.time(),
                ),
            )
        return key

    def runs(self, dataset: str | None = None) -> list[RunSpec]:
        query = "SELECT dataset, model_id, template_hash, sampling FROM runs"
        rows = (
            self._db.execute(query + " WHERE dataset = ?", (dataset,))
            if dataset is not None
            else self._db.execute(query)
        )
        return [RunSpec(d, m, t, json.loads(s)) for d, m, t, s in rows]

    # samples

    def check_question(self, run: str, question: Question) -> None:
        """Raise `DataError` when what is stored under this id is of another text."""
        for table in ("samples", "results"):
            row = self._db.execute(
                f"SELECT question_digest FROM {table} WHERE run = ? AND question_id = ? "
                "AND question_digest != ? LIMIT 1",
                (run, question.id, question.digest),
            ).fetchone()
            if row is not None:
                raise DataError(
                    f"question {question.id!r} has changed since its samples were stored in "
                    f"{self.path}; what is stored is of another text. Pass another --bank"
                )

    def indices(self, run: str, question_id: str) -> set[int]:
        rows = self._db.execute(
            "SELECT idx FROM samples WHERE run = ? AND question_id = ?", (run, question_id)
        )
        return {r[0] for r in rows}

    def add_sample(self, run: str, question: Question, sample: Sample) -> None:
        """Store one sample in its own transaction (committed when this returns)."""
        u = sample.usage
        with self._transaction():
            self._db.execute(
                "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run, question.id, sample.idx, sample.seed, question.digest, sample.text,
                    sample.answer, sample.finish_reason, u.prompt_tokens, u.cached_prompt_tokens,
                    u.completion_tokens, u.flops, u.seconds, sample.mean_logprob,
                    sample.sum_logprob, sample.top_logprobs, _pack(sample.logprobs), time.time(),
                ),
            )  # fmt: skip

    def add_score(
        self, run: str, question_id: str, idx: int, scorer: str, score: float, usage: Usage
    ) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?)",
                (
                    run,
                    question_id,
                    idx,
                    scorer,
                    None if math.isnan(score) else score,
                    json.dumps(usage.to_dict()),
                    time.time(),
                ),
            )

    def samples(self, run: str, question: Question, *, logprobs: bool = False) -> list[Sample]:
        """The stored samples of `question`, by index, with their scores; their token
        logprobs only when asked (they are most of the bank and only scorers read them)."""
        scores: dict[int, dict[str, tuple[float, Usage]]] = {}
        for idx, scorer, score, usage in self._db.execute(
            "SELECT idx, scorer, score, usage FROM scores WHERE run = ? AND question_id = ?",
            (run, question.id),
        ):
            value = math.nan if score is None else float(score)
            scores.setdefault(idx, {})[scorer] = (value, Usage.from_dict(json.loads(usage)))
        out = []
        for row in self._db.execute(
            "SELECT idx, seed, question_digest, text, answer, finish_reason, prompt_tokens, "
            "cached_tokens, completion_tokens, flops, seconds, mean_logprob, sum_logprob, "
            f"top_logprobs, {'logprobs' if logprobs else 'NULL'} "
            "FROM samples WHERE run = ? AND question_id = ? ORDER BY idx",
            (run, question.id),
        ):
            idx, seed, digest, text, answer, finish, prompt, cached, completion = row[:9]
            flops, seconds, mean_lp, sum_lp, top, packed = row[9:]
            if digest != question.digest:
                raise DataError(
                    f"question {question.id!r} has changed since its samples were stored in "
                    f"{self.path}; its samples are of another text. Pass another --bank"
                )
            mine = scores.get(idx, {})
            out.append(
                Sample(
                    idx=idx,
                    seed=seed,
                    text=text,
                    answer=answer,
                    finish_reason=finish,
                    usage=Usage(
                        prompt_tokens=prompt,
                        cached_prompt_tokens=cached,
                        completion_tokens=completion,
                        seconds=seconds,
                        flops=flops,
                    ),
                    mean_logprob=mean_lp,
                    sum_logprob=sum_lp,
                    top_logprobs=top,
                    logprobs=_unpack(packed),
                    scores={name: value for name, (value, _) in mine.items()},
                    score_usage={name: usage for name, (_, usage) in mine.items()},
                )
            )
        return out

    def count(self, run: str | None = None) -> int:
        if run is None:
            return int(self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        query = "SELECT COUNT(*) FROM samples WHERE run = ?"
        return int(self._db.execute(query, (run,)).fetchone()[0])

    # results of live strategies

    def add_result(
        self,
        run: str,
        question: Question,
        config: str,
        k: int,
        label: str,
        result: Result,
        correct: bool,
    ) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    run,
                    question.id,
                    config,
                    k,
                    label,
                    question.digest,
                    int(correct),
                    dumps(result.to_dict()),
                    time.time(),
                ),
            )

    def result(self, run: str, question: Question, config: str, k: int) -> StoredResult | None:
        row = self._db.execute(
            "SELECT label, question_digest, correct, result FROM results "
            "WHERE run = ? AND question_id = ? AND config = ? AND k = ?",
            (run, question.id, config, k),
        ).fetchone()
        if row is None:
            return None
        label, digest, correct, data = row
        if digest != question.digest:
            raise DataError(
                f"question {question.id!r} has changed since its results were stored in "
                f"{self.path}. Pass another --bank"
            )
        return StoredResult(label, k, bool(correct), json.loads(data))

    # merging

    def merge(self, other: SampleBank) -> Merged:
        """Copy into this bank, in one transaction, what `other` holds and this one lacks:
        its runs, samples, their scores and live results. A sample this bank holds under the
        same key is not copied (nor its scores, unless it is the same text); a question whose
        stored text differs between the banks raises `DataError` and copies nothing."""
        self._db.execute("ATTACH DATABASE ? AS other", (str(other.path),))
        try:
            with self._transaction():
                return self._merge_attached(other.path)
        finally:
            self._db.execute("DETACH DATABASE other")

    def _merge_attached(self, source: Path) -> Merged:
        db = self._db
        for table in ("samples", "results"):
            changed = db.execute(
                f"SELECT o.question_id FROM (SELECT DISTINCT run, question_id, question_digest "
                f"FROM other.{table}) AS o JOIN (SELECT DISTINCT run, question_id, "
                f"question_digest FROM main.{table}) AS m USING (run, question_id) "
                "WHERE m.question_digest != o.question_digest LIMIT 1"
            ).fetchone()
            if changed is not None:
                raise DataError(
                    f"question {changed[0]!r} is of another text in {source} than in the "
                    "banks merged before it; banks of different datasets cannot be merged"
                )
        same, conflicts = db.execute(
            "SELECT COALESCE(SUM(m.text = o.text AND m.seed = o.seed), 0), "
            "COALESCE(SUM(m.text != o.text OR m.seed != o.seed), 0) "
            "FROM other.samples AS o JOIN main.samples AS m USING (run, question_id, idx)"
        ).fetchone()
        db.execute("INSERT OR IGNORE INTO main.runs SELECT * FROM other.runs")
        samples = db.execute("INSERT OR IGNORE INTO main.samples SELECT * FROM other.samples")
        # scores follow their sample's text: a conflicting sample's scores judge another text
        scores = db.execute(
            "INSERT OR IGNORE INTO main.scores SELECT c.* FROM other.scores AS c "
            "JOIN other.samples AS o USING (run, question_id, idx) "
            "JOIN main.samples AS m USING (run, question_id, idx) "
            "WHERE m.text = o.text AND m.seed = o.seed"
        )
        results = db.execute("INSERT OR IGNORE INTO main.results SELECT * FROM other.results")
        return Merged(samples.rowcount, scores.rowcount, results.rowcount, same, conflicts)


def _pack(logprobs: tuple[TokenLogprob, ...] | None) -> bytes | None:
    if logprobs is None:
        return None
    rows = [[t.token, t.logprob, [list(a) for a in t.top]] for t in logprobs]
    return zlib.compress(json.dumps(rows, ensure_ascii=False).encode(), 6)


def _unpack(packed: bytes | None) -> tuple[TokenLogprob, ...] | None:
    if packed is None:
        return None
    rows = json.loads(zlib.decompress(packed))
    return tuple(TokenLogprob(t, lp, tuple((a, b) for a, b in top)) for t, lp, top in rows)
