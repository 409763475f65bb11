"""Loading a snapshot file of any supported version (in the isolated reader child): format v2
here, format v1 through :mod:`.v1`; both with the HDF5 helpers of :mod:`.h5`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .h5 import HEADER_TYPES, MAX_MANIFEST_BYTES, check_stored, check_structure, crc, header_crc, object_names, open_h5, read_attr, read_dataset
from .hidden import earlier_hidden
from .manifest import from_parts, to_parts
from .model import FORMAT, Snapshot, SnapshotError
from .packed import Chunks, extremes
from .validate import check_affordable, check_header, check_values, expected_arrays, require

RANGED = frozenset({"source", "target", "delay"})
"""The connection columns whose range a restore asks for (the accessor's check of the ids,
the clock's delays): found by the reader, which holds them inflated."""

Place = Callable[[dict[str, tuple[np.dtype, tuple[int, ...]]]], dict[str, np.ndarray]]
"""Where a snapshot's arrays are read into: empty arrays for the checked dtypes and shapes."""


def load_parts(path: Path, on_manifest: Callable[[int], None] | None = None, place: Place | None = None) -> tuple[Snapshot, dict[str, Any], dict[str, Any], dict[str, Chunks]]:
    """Parse and validate a snapshot file of any supported version; also the manifest and
    arrays it was made from (what the reader sends on: making them again from the snapshot
    would cost as much as validating a network with a run per node). ``on_manifest`` hears
    the manifest's size once it is read; ``place`` gives the arrays to read into, once their
    sizes are checked (the reader's answer, so that they need no copy). With ``place``, the
    connection columns stored in einet's chunks are not placed but read on their own, and
    their deflated chunks come back too (what the reader sends of them:
    :mod:`.packed`)."""
    with open_h5(path) as h5:
        version = read_attr(h5, "format_version", int) if h5.attrs.get("format") in (FORMAT, FORMAT.encode()) else None
        if version is None:
            raise SnapshotError("not an einet snapshot (no 'format' attribute)")
        if version == 1:
            from .v1 import load_v1

            old = load_v1(h5, path)
            return (old, *to_parts(old), {})
        header = {name: read_attr(h5, name, kind) for name, kind in HEADER_TYPES.items()}
        check_header(header)
        extra = sorted(set(h5.attrs) - set(HEADER_TYPES) - {"header_crc32"})
        require(not extra, f"unexpected attributes {', '.join(extra[:3])}")
        require("manifest" in h5 and isinstance(h5["manifest"], h5py.Dataset), "missing manifest")
        ds = h5["manifest"]
        require(ds.dtype == np.uint8 and len(ds.shape) == 1 and ds.shape[0] <= MAX_MANIFEST_BYTES, "manifest has the wrong type or size")
        raw = read_dataset(h5, "manifest", np.dtype(np.uint8), ds.shape)
        if on_manifest is not None:
            on_manifest(len(raw))
        stored_crc = h5.attrs.get("header_crc32")
        require(stored_crc is not None and np.asarray(stored_crc).shape == (), "header attributes fail their checksum")
        # a name changed or added fails here, before any name from the file is in a message;
        # a file of the earlier form (no names covered) matches that form only
        names = object_names(h5)
        require(int(stored_crc) in (header_crc(header, crc(raw), names), header_crc(header, crc(raw))), "header attributes fail their checksum")
        try:
            manifest = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SnapshotError("manifest is not valid JSON") from None
        earlier = earlier_hidden(manifest)
        spec = expected_arrays(manifest)
        require(manifest["header"] == header, "manifest and attributes disagree")
        check_structure(h5, {"manifest", *spec}, ignored="hidden" if earlier else None)
        check_affordable(spec)
        check_stored(h5, spec)
        packs = {name: Chunks() for name, (_, shape) in spec.items() if place is not None and name.startswith("synapses/") and len(shape) == 1}
        into = place({name: v for name, v in spec.items() if name not in packs}) if place is not None else {}
        arrays = {name: read_dataset(h5, name, dt, shape, into.get(name), packs.get(name)) for name, (dt, shape) in spec.items()}
    snap = from_parts(manifest, arrays, str(path))
    check_values(snap)
    packs = {name: chunks for name, chunks in packs.items() if chunks.raw}
    for name, chunks in packs.items():  # found once here: a restore asks for ids' and delays' ranges
        if name.rsplit("/", 1)[-1] in RANGED and len(arrays[name]):
            chunks.extremes = extremes(arrays[name])
    return snap, manifest, arrays, packs
