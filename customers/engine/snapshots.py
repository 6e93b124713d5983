"""Compact daily snapshots: score, stage and P(alive) packed per block of customer ids.

A block holds ``BLOCK_SIZE`` consecutive customer ids; slot ``id % BLOCK_SIZE`` holds that
customer's values. Scores are stored as uint16 hundredths (0–10000), P(alive) as uint16
ten-thousandths, stages as uint8 codes; ``MISSING`` marks ids with no customer or an unknown
value. Little-endian on disk so the bytes mean the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZE = 1024
MISSING_U16 = np.uint16(65535)
MISSING_U8 = np.uint8(255)
_U16 = np.dtype("<u2")


@dataclass(frozen=True)
class SnapshotBlock:
    block: int
    scores: bytes
    stages: bytes
    p_alive: bytes


def block_of(customer_id: int) -> int:
    return customer_id // BLOCK_SIZE


def pack_blocks(
    ids: np.ndarray, scores: np.ndarray, stage_codes: np.ndarray, p_alive: np.ndarray
) -> list[SnapshotBlock]:
    """Pack per-customer values into the blocks their ids fall in (NaN P(alive) = unknown)."""
    ids = np.asarray(ids, dtype=np.int64)
    blocks = ids // BLOCK_SIZE
    slots = ids % BLOCK_SIZE
    score_u16 = np.round(np.clip(np.asarray(scores, float), 0, 100) * 100).astype(_U16)
    pa = np.asarray(p_alive, float)
    pa_u16 = np.where(
        np.isnan(pa), MISSING_U16, np.round(np.clip(np.nan_to_num(pa), 0, 1) * 10_000)
    ).astype(_U16)
    codes = np.asarray(stage_codes).astype(np.uint8)
    result = []
    for block in np.unique(blocks):
        mask = blocks == block
        s = np.full(BLOCK_SIZE, MISSING_U16, dtype=_U16)
        st = np.full(BLOCK_SIZE, MISSING_U8, dtype=np.uint8)
        p = np.full(BLOCK_SIZE, MISSING_U16, dtype=_U16)
        s[slots[mask]] = score_u16[mask]
        st[slots[mask]] = codes[mask]
        p[slots[mask]] = pa_u16[mask]
        result.append(SnapshotBlock(int(block), s.tobytes(), st.tobytes(), p.tobytes()))
    return result


def unpack_scores(blob: bytes) -> np.ndarray:
    """Scores of one block as floats, NaN where no customer."""
    raw = np.frombuffer(bytes(blob), dtype=_U16)
    return np.where(raw == MISSING_U16, np.nan, raw / 100.0)


def unpack_p_alive(blob: bytes) -> np.ndarray:
    raw = np.frombuffer(bytes(blob), dtype=_U16)
    return np.where(raw == MISSING_U16, np.nan, raw / 10_000.0)


def unpack_stages(blob: bytes) -> np.ndarray:
    """Stage codes of one block as int16, -1 where no customer."""
    raw = np.frombuffer(bytes(blob), dtype=np.uint8).astype(np.int16)
    raw[raw == MISSING_U8] = -1
    return raw
