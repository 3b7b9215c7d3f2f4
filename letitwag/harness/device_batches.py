"""The device data path in the main process: each batch's JPEGs decoded on the device ahead of the model.

Why a background thread: nvJPEG's batched decode blocks its caller until the batch is decoded
(on the GPU's JPEG engines, beside the SMs), and the resize kernels are launched from Python.
A second thread does both for the next batches while the main thread runs the model on the
current one; torch releases the GIL inside its operators, so the two overlap. Both threads
use the device's default stream, so the model always sees finished pixels without events.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

import numpy as np

from letitwag.harness.images import DeviceBatch
from letitwag.pixels.decoder import DeviceDecoder, place_rows

PREFETCH_BATCHES = 2  # decoded batches waiting for the model (each ~40 MB of pixels at 256 x 224 x 224)
_DONE = object()


class DeviceBatches:
    """Iterate ``loader``'s ``DeviceBatch``es as ``(positions, indices, labels, hashes, ok, pixels)``
    with ``pixels`` on the device (the CPU path's batches have the same shape).

    ``profile`` gains ``read_wait`` (seconds the thread waited for the DataLoader) and
    ``device_decode`` (seconds it spent decoding and launching the resize); the decoder's
    ``counts`` gain ``cpu_<reason>`` per sample the workers decoded and ``corrupt`` per sample
    nobody could (besides the decoder's own ``device``, ``device_failed`` and ``corrupt``).
    """

    def __init__(self, loader, decoder: DeviceDecoder, profile: dict, depth: int = PREFETCH_BATCHES) -> None:
        self.loader = loader
        self.decoder = decoder
        self.profile = profile
        self.counts = decoder.counts
        self.ready: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def __iter__(self) -> Iterator[tuple]:
        thread = threading.Thread(target=self._produce, name="letitwag-device-decode", daemon=True)
        thread.start()
        try:
            while True:
                item = self.ready.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    self.ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            waited = time.perf_counter()
            for batch in self.loader:
                self.profile["read_wait"] += time.perf_counter() - waited
                started = time.perf_counter()
                decoded = self._decode(batch)
                self.profile["device_decode"] += time.perf_counter() - started
                if not self._put(decoded):
                    return
                waited = time.perf_counter()
            self._put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(error)

    def _decode(self, batch: DeviceBatch) -> tuple:
        ok = np.zeros(len(batch.positions), dtype=bool)
        parts = []
        if len(batch.jpeg_rows):
            pixels, decoded = self.decoder(batch.jpegs())
            ok[batch.jpeg_rows[decoded]] = True
            parts.append((batch.jpeg_rows[decoded], pixels))
        if batch.pixels is not None:
            ok[batch.pixel_rows] = True
            parts.append((batch.pixel_rows, batch.pixels))
        on_device = set(batch.jpeg_rows.tolist())
        for row, route in enumerate(batch.routes):
            if row in on_device:
                continue
            self.counts[f"cpu_{route}" if ok[row] else "corrupt"] += 1
        pixels = place_rows(parts, np.flatnonzero(ok), self.decoder.device) if ok.any() else None
        return batch.positions, batch.indices, batch.labels, batch.hashes, ok, pixels
