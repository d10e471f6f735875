"""metrics.json's ``logging_s`` counts every TensorBoard write docs/performance.md says it counts: scalars, texts, the
layout, pictures and hparams — and counts nothing twice. A fake clock advances only while the writer writes."""

from __future__ import annotations

import annkit.dashboard
from annkit.tracking import TensorBoardLogger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Writer:
    """Each write takes exactly one second of the fake clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def __getattr__(self, name):
        def write(*args, **kwargs):
            self.clock.now += 1.0

        return write


def test_texts_scalars_and_the_config_count_as_logging_and_nothing_twice(tmp_path, monkeypatch):
    logger = TensorBoardLogger(tmp_path / "tb")
    logger.writer.close()
    clock = Clock()
    monkeypatch.setattr(annkit.dashboard.time, "perf_counter", clock)
    logger.writer, logger.seconds = Writer(clock), 0.0
    logger.config("lr: auto")
    logger.text("init_from", "loaded", 0)
    logger.scalar("params/trainable", 10, 0)
    logger.describe("classification", False, "model")  # the custom-scalars layout and the model text: 2 writes
    assert logger.seconds == 5.0
    with logger.timed():  # a block that itself writes a text: its time once
        logger.writer.add_scalar("lr_find/lr", 1e-3, 0)
        logger.text("lr_find/summary", "…", 0)
    assert logger.seconds == 7.0
