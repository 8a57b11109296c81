"""Archive: old recordings and old quality-metrics months move to cold storage (media/storage/archive.py).

- Recordings: a stream whose full recording is older than NCHAT_ARCHIVE_RECORDINGS_AFTER_DAYS has
  its recording folder (recording, clips, thumbnail) copied to `recordings/<stream_id>/...`; every
  copy is read back and compared (SHA-256) before anything is removed; a manifest of the files and
  digests goes next to them; the recording rows get `metadata.archive` (when, where, files, bytes);
  then the local folder is removed. The recordings route serves such files from the archive.
- Quality metrics: each monthly partition whose month ended more than NCHAT_ARCHIVE_METRICS_AFTER_DAYS
  ago is exported through the parent table as gzipped CSV (`metrics/<partition>.csv.gz`, a header
  row, JSON metadata), read back and counted, and then retired by nchat.retire_quality_partition,
  which detaches and drops it only if it still holds exactly the rows exported (migration 0017).
  One archiver at a time does the metrics (a transaction-scoped advisory lock).

Run by `nchat-live archive` and, on media workers, every NCHAT_ARCHIVE_INTERVAL_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ...auth import Claims
from ...config import Settings
from ...db import Database
from ..storage.archive import archive_storage, metrics_key, recording_key
from ..storage.base import MediaStorage

log = logging.getLogger(__name__)

MANIFEST = "archive-manifest.json"
PARTITION = re.compile(r"^nchat_stream_quality_metrics_(\d{4})_(\d{2})$")
METRIC_COLUMNS = ("id", "stream_id", "recorded_at", "current_viewer_count", "bitrate_kbps", "upload_bitrate_kbps",
                  "fps", "resolution", "dropped_frames", "latency_ms", "packet_loss_percent", "jitter_ms", "rtt_ms",
                  "encoder_speed", "health_score", "metadata")
_LOCK = "nchat-archive-metrics"


class ArchiveError(RuntimeError):
    """A copy did not read back as written: nothing was removed."""


@dataclass
class ArchiveReport:
    recordings: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    partitions: list[str] = field(default_factory=list)
    rows: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"archived {len(self.recordings)} recordings ({self.files} files, {self.bytes} bytes) and "
                f"{len(self.partitions)} metrics partitions ({self.rows} rows)"
                + (f"; skipped: {'; '.join(self.skipped)}" if self.skipped else ""))


def month_bounds(partition: str) -> tuple[datetime, datetime] | None:
    """The [start, end) of a monthly partition, from its name."""
    match = PARTITION.match(partition)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    return datetime(year, month, 1, tzinfo=UTC), datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def _copy_folder(folder: Path, archive: MediaStorage, stream_id: str) -> tuple[int, int]:
    """Copies every file, verifies each read-back, writes the manifest; (files, bytes)."""
    digests: dict[str, str] = {}
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        key = recording_key(stream_id, rel)
        archive.write(key, data)
        back = archive.read(key)
        if back is None or hashlib.sha256(back).hexdigest() != digest:
            raise ArchiveError(f"{key} did not read back as written")
        digests[rel] = digest
        total += len(data)
    manifest = json.dumps({"stream_id": stream_id, "files": digests, "bytes": total}, indent=1).encode()
    archive.write(recording_key(stream_id, MANIFEST), manifest)
    return len(digests), total


def export_csv(records: list[Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(METRIC_COLUMNS)
    for record in records:
        writer.writerow([_cell(record[c]) for c in METRIC_COLUMNS])
    return gzip.compress(out.getvalue().encode(), mtime=0)


def read_metrics(data: bytes) -> list[dict[str, str]]:
    """An exported partition's rows (strings, as written)."""
    return list(csv.DictReader(io.StringIO(gzip.decompress(data).decode())))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Archiver:
    def __init__(self, settings: Settings, database: Database, archive: MediaStorage | None = None) -> None:
        self.settings = settings
        self.db = database
        self.archive = archive if archive is not None else archive_storage(settings)
        self._task: asyncio.Task[None] | None = None

    async def run(self, now: datetime | None = None) -> ArchiveReport:
        """One pass: recordings, then metrics. Nothing is removed before its copy checks out."""
        if self.archive is None:
            raise ArchiveError("no archive: set NCHAT_ARCHIVE_URL (file:///folder or s3://bucket/prefix)")
        now = now or datetime.now(UTC)
        report = ArchiveReport()
        await self.archive_recordings(now, report)
        await self.archive_metrics(now, report)
        log.info("archive: %s", report.summary())
        return report

    async def archive_recordings(self, now: datetime, report: ArchiveReport) -> None:
        assert self.archive is not None
        cutoff = now - timedelta(days=self.settings.archive_recordings_after_days)
        async with self.db.session(Claims.service()) as session:
            streams = await session.fetch(
                "SELECT DISTINCT stream_id FROM nchat_stream_recordings WHERE kind = 'full' AND status = 'ready' "
                "AND created_at < $1 AND NOT (metadata ? 'archive') ORDER BY stream_id", cutoff)
        for record in streams:
            stream_id = str(record["stream_id"])
            folder = self.settings.recording_dir / stream_id
            if not await asyncio.to_thread(folder.is_dir):
                report.skipped.append(f"{stream_id}: no recording folder on this worker")
                continue
            try:
                files, size = await asyncio.to_thread(_copy_folder, folder, self.archive, stream_id)
            except (ArchiveError, OSError) as exc:
                report.skipped.append(f"{stream_id}: {exc}")
                log.error("archive of recording %s failed: %s", stream_id, exc)
                continue
            where = self.settings.archive_url or type(self.archive).__name__
            async with self.db.session(Claims.service()) as session:
                await session.execute(
                    "UPDATE nchat_stream_recordings SET metadata = metadata || jsonb_build_object('archive', "
                    "jsonb_build_object('at', $2::timestamptz, 'where', $3::text, 'files', $4::int, "
                    "'bytes', $5::bigint)) WHERE stream_id = $1", stream_id, now, where, files, size)
            await asyncio.to_thread(shutil.rmtree, folder)
            report.recordings.append(stream_id)
            report.files += files
            report.bytes += size

    async def archive_metrics(self, now: datetime, report: ArchiveReport) -> None:
        assert self.archive is not None
        cutoff = now - timedelta(days=self.settings.archive_metrics_after_days)
        async with self.db.session(Claims.service()) as session:
            names = await session.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'public.nchat_stream_quality_metrics'::regclass ORDER BY c.relname")
        for name in (str(r["relname"]) for r in names):
            bounds = month_bounds(name)
            if bounds is None or bounds[1] > cutoff:
                continue
            start, end = bounds
            async with self.db.session(Claims.service()) as session:
                if not await session.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", _LOCK):
                    report.skipped.append(f"{name}: another archiver is on it")
                    return
                records = await session.fetch(
                    f"SELECT {', '.join(METRIC_COLUMNS)} FROM nchat_stream_quality_metrics "
                    "WHERE recorded_at >= $1 AND recorded_at < $2 ORDER BY recorded_at, id", start, end)
                data = await asyncio.to_thread(export_csv, list(records))
                key = metrics_key(name)
                await asyncio.to_thread(self.archive.write, key, data)
                back = await asyncio.to_thread(self.archive.read, key)
                if back is None or len(read_metrics(back)) != len(records):
                    raise ArchiveError(f"{key} did not read back with {len(records)} rows")
                await session.fetchval("SELECT nchat.retire_quality_partition($1, $2)", name, len(records))
            report.partitions.append(name)
            report.rows += len(records)

    # -- the schedule -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.archive is not None and self.settings.archive_interval_seconds > 0:
            self._task = asyncio.get_running_loop().create_task(self._every())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.archive_interval_seconds)
            try:
                await self.run()
            except Exception:
                log.exception("scheduled archive pass failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
