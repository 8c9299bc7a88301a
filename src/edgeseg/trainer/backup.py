"""A training backup that survives a kill at any moment, for "kill it and run the same command again"."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import keras
from edgeseg.errors import EdgesegError

log = logging.getLogger("edgeseg")
WEIGHTS, STATE = "latest.weights.h5", "training_metadata.json"


class BackupError(EdgesegError, RuntimeError):
    """No usable backup to resume from (the message names the files and what to do)."""


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backups are whole or absent.

    Each backup (weights and epoch) is written into ``BACKUP/saving/`` and renamed to ``BACKUP/current/``;
    the one before is kept as ``BACKUP/previous/``. A kill while writing leaves the last good backup
    in place. A damaged backup falls back to the previous one with a warning; when none can be read,
    :class:`BackupError` says which files and how to start over.
    """

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=True)
        self.root = Path(backup_dir)

    def on_train_begin(self, logs=None):
        damaged = []
        for name in ("current", "previous"):
            snapshot = self.root / name
            if not snapshot.is_dir():
                continue
            try:
                self._restore(snapshot)
            except Exception as exc:  # h5py, JSON and Keras each raise their own types for a damaged file
                damaged.append(f"{snapshot}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                log.warning("training backup %s is damaged (%s)", snapshot, damaged[-1])
                continue
            if damaged:
                log.warning("resumed from the previous backup %s instead", snapshot)
            return
        if damaged:
            raise BackupError(f"cannot resume: every training backup is damaged ({'; '.join(damaged)}). "
                              "Run the same command with --overwrite to start the run over")

    def _restore(self, snapshot: Path) -> None:
        state = json.loads((snapshot / STATE).read_text())
        epoch = int(state["epoch"])
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(snapshot / WEIGHTS)
        self.model._initial_epoch = epoch

    def _save_model(self):
        saving, current, previous = self.root / "saving", self.root / "current", self.root / "previous"
        shutil.rmtree(saving, ignore_errors=True)
        saving.mkdir(parents=True)
        self.model.save_weights(saving / WEIGHTS)
        (saving / STATE).write_text(json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        if current.is_dir():
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(current, previous)
        os.replace(saving, current)
