"""Joining pieces of objects cut by block seams, streaming, with a union-find.

Blocks arrive in row-major order.  Each brings its open pieces (objects that
touch an interior block edge) and, per interior edge, the piece owning each
edge pixel.  Two pieces of the same class whose edge pixels face each other
across a seam belong to one object (4-connectivity): they are joined in a
union-find.  A piece waits for the blocks to its right and below; once every
piece of a joined group has seen all its neighbours, the group is complete
and comes out as one polygon (the union of its pieces).  Only open pieces
and one row of block edges are held, never the whole scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .finish import PieceStats
from .tasks import BlockResult

__all__ = ["SeamMerger", "MergedObjects"]


@dataclass
class MergedObjects:
    """Whole objects joined across seams, in global pixel coordinates."""

    geoms: np.ndarray
    class_id: np.ndarray
    stats: PieceStats | None

    def __len__(self) -> int:
        return len(self.geoms)


class SeamMerger:
    """Joins open pieces of a ``rows`` x ``cols`` block grid; feed blocks with :meth:`add` in row-major order."""

    def __init__(self, rows: int, cols: int, *, with_confidence: bool) -> None:
        self.rows, self.cols = rows, cols
        self.with_confidence = with_confidence
        self._expected = 0
        self._next_id = 0
        self._wkb: dict[int, bytes] = {}
        self._class: dict[int, int] = {}
        self._stats: dict[int, tuple[float, int, int]] = {}
        self._parent: dict[int, int] = {}
        self._members: dict[int, list[int]] = {}
        self._pending: dict[int, int] = {}
        self._right_edge: np.ndarray | None = None
        self._bottom_edges: dict[int, np.ndarray] = {}

    @property
    def open_pieces(self) -> int:
        """Pieces held, waiting for a neighbouring block."""
        return len(self._wkb)

    def _find(self, piece: int) -> int:
        parent = self._parent
        root = piece
        while parent[root] != root:
            root = parent[root]
        while parent[piece] != root:  # path compression
            parent[piece], piece = root, parent[piece]
        return root

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        if len(self._members[ra]) < len(self._members[rb]):
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._members[ra].extend(self._members.pop(rb))
        self._pending[ra] += self._pending.pop(rb)

    def _join(self, before: np.ndarray, after: np.ndarray) -> None:
        """Join pieces facing each other across a seam (edge arrays of global piece ids)."""
        both = (before >= 0) & (after >= 0)
        if not both.any():
            return
        pairs = np.unique(np.stack([before[both], after[both]], axis=1), axis=0)
        for a, b in pairs.tolist():
            if self._class[a] == self._class[b]:
                self._union(a, b)

    def _neighbour_arrived(self, edge: np.ndarray, touched: set[int]) -> None:
        """The block beyond ``edge`` has arrived: its pieces wait for one neighbour fewer."""
        for piece in np.unique(edge[edge >= 0]).tolist():
            self._pending[self._find(piece)] -= 1
            touched.add(piece)

    def add(self, result: BlockResult) -> MergedObjects:
        """Take one block's open pieces; return the objects completed by it."""
        if result.index != self._expected:
            raise RuntimeError(f"internal error: block {result.index} arrived, block {self._expected} was expected")
        self._expected += 1
        r, c = divmod(result.index, self.cols)
        pieces = result.pieces
        n = len(pieces)
        ids = self._next_id + np.arange(n, dtype=np.int64)
        self._next_id += n
        for k, pid in enumerate(ids.tolist()):
            self._wkb[pid] = pieces.wkb[k]
            self._class[pid] = int(pieces.class_id[k])
            if pieces.stats is not None:
                s = pieces.stats
                self._stats[pid] = (float(s.conf_sum[k]), int(s.conf_count[k]), int(s.conf_max[k]))
            self._parent[pid] = pid
            self._members[pid] = [pid]
            self._pending[pid] = 0
        edges = {side: np.where(e >= 0, ids[np.maximum(e, 0)] if n else -1, -1) for side, e in result.edges.items()}
        for side in ("right", "bottom"):
            if side in edges:
                for pid in np.unique(edges[side][edges[side] >= 0]).tolist():
                    self._pending[pid] += 1
        touched: set[int] = set(ids.tolist())
        if c > 0:
            before = self._right_edge
            if before is None or "left" not in edges:
                raise RuntimeError(f"internal error: block {result.index} has no left seam")
            self._join(before, edges["left"])
            self._neighbour_arrived(before, touched)
        if r > 0:
            before = self._bottom_edges.pop(c, None)
            if before is None or "top" not in edges:
                raise RuntimeError(f"internal error: block {result.index} has no top seam")
            self._join(before, edges["top"])
            self._neighbour_arrived(before, touched)
        self._right_edge = edges.get("right")
        if "bottom" in edges:
            self._bottom_edges[c] = edges["bottom"]
        roots = {self._find(p) for p in touched}
        complete = sorted((min(self._members[root]), root) for root in roots if self._pending[root] == 0)
        return self._take([root for _, root in complete])

    def _take(self, roots: list[int]) -> MergedObjects:
        import shapely

        geoms = np.empty(len(roots), dtype=object)
        classes = np.zeros(len(roots), dtype=np.int32)
        total, count, peak = np.zeros(len(roots)), np.zeros(len(roots), np.int64), np.zeros(len(roots), np.uint8)
        for i, root in enumerate(roots):
            members = sorted(self._members.pop(root))
            del self._pending[root]
            parts = shapely.from_wkb([self._wkb.pop(m) for m in members])
            geoms[i] = parts[0] if len(parts) == 1 else shapely.union_all(parts)
            classes[i] = self._class[root]
            for m in members:
                del self._class[m], self._parent[m]
                if self.with_confidence:
                    s, k, x = self._stats.pop(m)
                    total[i] += s
                    count[i] += k
                    peak[i] = max(peak[i], x)
        stats = PieceStats(total, count, peak) if self.with_confidence else None
        return MergedObjects(geoms, classes, stats)

    def check_complete(self) -> None:
        """Raise if any piece is still waiting (not every block was added)."""
        if self._wkb or self._expected != self.rows * self.cols:
            raise RuntimeError(
                f"internal error: {len(self._wkb)} open pieces left after {self._expected} of "
                f"{self.rows * self.cols} blocks"
            )
